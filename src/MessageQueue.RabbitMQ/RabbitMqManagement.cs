using MessageQueue.Routing;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Runtime management on the RabbitMQ server, over AMQP, and over the management HTTP API when its URL is given
/// (<see cref="RabbitMqOptions.ManagementUrl"/>: queue counters and every queue's name). Each AMQP operation uses a
/// channel of its own, since an operation RabbitMQ refuses closes its channel. What cannot be told is documented on
/// each member and in the README: whether a binding existed before it was removed, and (without the HTTP API) queue
/// counters beyond the ready count and consumers and the names of queues this broker did not declare.
/// </summary>
internal sealed class RabbitMqManagement(RabbitMqBroker broker) : IBrokerManagement, IAsyncDisposable
{
    private volatile bool _disposed;

    public async ValueTask DeclareExchangeAsync(string name, ExchangeType type, Action<ExchangeOptions>? configure = null, CancellationToken cancellationToken = default)
    {
        NameRules.ThrowIfInvalid(name, "exchange");
        var options = new ExchangeOptions();
        configure?.Invoke(options);
        ThrowIfDisposed();
        await RabbitMqTopology.DeclareAsync(broker.Connection, [new ExchangeItem(name, type, options)], cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<bool> DeleteExchangeAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name.StartsWith("amq.", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Exchange '{name}' is one of RabbitMQ's own and cannot be deleted.", nameof(name));
        }

        broker.Delays.ForgetExchange(name);
        broker.Publisher.Forget(name);
        return DeleteAsync(name, exchange: true, cancellationToken);
    }

    public async ValueTask DeclareQueueAsync(string name, Action<QueueOptions>? configure = null, CancellationToken cancellationToken = default)
    {
        NameRules.ThrowIfInvalid(name, "queue");
        var options = new QueueOptions();
        configure?.Invoke(options);
        ThrowIfDisposed();
        var item = new QueueItem(name, options, broker.Options.TypeOf(name));
        var problems = options.Validate(name, RabbitMqTransport.BackendFor(broker.Options)).ToList();
        if (problems.Count > 0)
        {
            throw new TopologyException(problems);
        }

        await RabbitMqTopology.DeclareAsync(broker.Connection, [item], cancellationToken).ConfigureAwait(false);
        broker.Queues[name] = options.Clone();
    }

    public async ValueTask<bool> DeleteQueueAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var deleted = await DeleteAsync(name, exchange: false, cancellationToken).ConfigureAwait(false);
        broker.Queues.TryRemove(name, out _);
        broker.Delays.Forget(name); // a queue declared again under this name needs its delay binding again
        return deleted;
    }

    /// <summary>Deletes an exchange or queue; true when it existed (a passive declare says so first: another client
    /// could delete it in between, and then this says true).</summary>
    private async ValueTask<bool> DeleteAsync(string name, bool exchange, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (!await ExistsAsync(name, exchange, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await WithChannelAsync(channel => exchange
            ? channel.ExchangeDeleteAsync(name, ifUnused: false, cancellationToken: cancellationToken)
            : channel.QueueDeleteAsync(name, ifUnused: false, ifEmpty: false, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Whether the server has the exchange or queue (a passive declare).</summary>
    internal async ValueTask<bool> ExistsAsync(string name, bool exchange, CancellationToken cancellationToken)
    {
        try
        {
            await WithChannelAsync(channel => exchange
                ? channel.ExchangeDeclarePassiveAsync(name, cancellationToken)
                : channel.QueueDeclarePassiveAsync(name, cancellationToken), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            return false;
        }
    }

    public ValueTask BindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        BindAsync(new BindingItem(exchange, queue, ToExchange: false, routingKey, arguments), cancellationToken);

    public ValueTask BindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        BindAsync(new BindingItem(source, destination, ToExchange: true, routingKey, arguments), cancellationToken);

    private async ValueTask BindAsync(BindingItem binding, CancellationToken cancellationToken)
    {
        CheckBinding(binding);
        try
        {
            await RabbitMqTopology.DeclareAsync(broker.Connection, [binding], cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            throw new TopologyException($"Cannot bind {(binding.ToExchange ? "exchange" : "queue")} '{binding.Destination}' to exchange '{binding.Source}': {ex.ShutdownReason.ReplyText}. Declare both first.", ex);
        }
    }

    /// <summary>Removes a binding. RabbitMQ does not say whether the binding existed, so true means only that it does
    /// not exist now (both ends exist and the unbind went through); false means an end does not exist.</summary>
    public ValueTask<bool> UnbindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        UnbindAsync(new BindingItem(exchange, queue, ToExchange: false, routingKey, arguments), cancellationToken);

    /// <summary>Removes an exchange-to-exchange binding; see <see cref="UnbindQueueAsync"/>.</summary>
    public ValueTask<bool> UnbindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        UnbindAsync(new BindingItem(source, destination, ToExchange: true, routingKey, arguments), cancellationToken);

    private async ValueTask<bool> UnbindAsync(BindingItem b, CancellationToken cancellationToken)
    {
        CheckBinding(b);
        if (!await ExistsAsync(b.Source, exchange: true, cancellationToken).ConfigureAwait(false)
            || !await ExistsAsync(b.Destination, b.ToExchange, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        var arguments = RabbitMqTopology.Arguments(b.Arguments);
        await WithChannelAsync(channel => b.ToExchange
            ? channel.ExchangeUnbindAsync(b.Destination, b.Source, b.RoutingKey, arguments, cancellationToken: cancellationToken)
            : channel.QueueUnbindAsync(b.Destination, b.Source, b.RoutingKey, arguments, cancellationToken), cancellationToken).ConfigureAwait(false);
        return true;
    }

#pragma warning disable CA2208 // The names are those of the public methods that call this.
    private void CheckBinding(BindingItem binding)
    {
        ArgumentNullException.ThrowIfNull(binding.Source, binding.ToExchange ? "source" : "exchange");
        ArgumentNullException.ThrowIfNull(binding.Destination, binding.ToExchange ? "destination" : "queue");
        NameRules.ThrowIfInvalidRoutingKey(binding.RoutingKey, "routingKey");
        if (binding.Source.Length == 0)
        {
            throw new ArgumentException("The default exchange '' cannot have bindings; every queue is already bound to it by name.", binding.ToExchange ? "source" : "exchange");
        }
#pragma warning restore CA2208

        ThrowIfDisposed();
    }

    /// <summary>A queue's counters: from the management HTTP API when its URL is given (ready, unacked, consumers,
    /// published, delivered, acked, redelivered, the head message's timestamp; sampled by RabbitMQ, so they trail by up
    /// to its statistics interval), else what AMQP tells (a passive declare: ready messages and consumers). Counters
    /// RabbitMQ does not keep per queue (nacked, dead-lettered, expired, dropped, rejected, delayed, duplicates) are
    /// zero.</summary>
    public QueueInfo GetQueueInfo(string queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ThrowIfDisposed();
        if (broker.HttpApi is { } api)
        {
            return Run(() => api.GetQueueAsync(queue, CancellationToken.None));
        }

        var ok = Run(async () =>
        {
            try
            {
                QueueDeclareOk? result = null;
                await WithChannelAsync(async channel => result = await channel.QueueDeclarePassiveAsync(queue).ConfigureAwait(false), CancellationToken.None).ConfigureAwait(false);
                return result!;
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
            {
                throw new TopologyException($"Queue '{queue}' does not exist on the RabbitMQ server.", ex);
            }
        });
        return new QueueInfo { Name = queue, Ready = checked((int)ok.MessageCount), Consumers = checked((int)ok.ConsumerCount) };
    }

    /// <summary>Every queue of the virtual host but the transport's delay queues, from the management HTTP API when its
    /// URL is given; else the queues this broker declared (at <c>Build()</c> or through this management) and has not
    /// deleted, since AMQP cannot list a server's queues.</summary>
    public IReadOnlyList<string> GetQueueNames()
    {
        ThrowIfDisposed();
        return broker.HttpApi is { } api
            ? [.. Run(() => api.GetQueueNamesAsync(CancellationToken.None)).Where(q => !RabbitMqDelays.IsLevel(q) && q != RabbitMqDelays.ForwardQueue).Order(StringComparer.Ordinal)]
            : [.. broker.Queues.Keys.Order(StringComparer.Ordinal)];
    }

    public async ValueTask<int> PurgeAsync(string queue, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ThrowIfDisposed();
        uint purged = 0;
        try
        {
            await WithChannelAsync(async channel => purged = await channel.QueuePurgeAsync(queue, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            throw new TopologyException($"Queue '{queue}' does not exist on the RabbitMQ server.", ex);
        }

        return checked((int)purged);
    }

    /// <summary>
    /// The first <paramref name="maxMessages"/> ready messages of <paramref name="queue"/>, left in place. RabbitMQ has no
    /// peek: this takes them with <c>basic.get</c> on a channel of its own without acking, then closes the channel, and
    /// the server puts them back where they were. What it costs: each read message is marked redelivered (its next
    /// delivery has <c>Redelivered = true</c>), a quorum queue counts a delivery (so a peek is refused on a quorum queue
    /// with a delivery limit: it could dead-letter them), messages held by consumers are not seen, and the queue's
    /// consumers get none of those messages while the peek holds them. Bodies are read as the type their AMQP
    /// <c>type</c> names when this process knows it, else left as bytes.
    /// </summary>
    public async ValueTask<IReadOnlyList<PeekedMessage>> PeekAsync(string queue, int maxMessages = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        ThrowIfDisposed();
        if (broker.Queues.TryGetValue(queue, out var options) && options.MaxDeliveryCount is not null && broker.Options.TypeOf(queue) == RabbitMqQueueType.Quorum)
        {
            throw new NotSupportedException($"Queue '{queue}' is a quorum queue with a delivery limit: a peek on RabbitMQ reads by taking, which counts a delivery and could dead-letter the messages it reads. Consume it, or use RabbitMQ's management UI.");
        }

        var peeked = new List<PeekedMessage>();
        try
        {
            await WithChannelAsync(async channel =>
            {
                while (peeked.Count < maxMessages && await channel.BasicGetAsync(queue, autoAck: false, cancellationToken).ConfigureAwait(false) is { } got)
                {
                    peeked.Add(Peeked(got));
                }
            }, cancellationToken).ConfigureAwait(false); // closing the channel returns them all
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            throw new TopologyException($"Queue '{queue}' does not exist on the RabbitMQ server.", ex);
        }

        return peeked;
    }

    private PeekedMessage Peeked(BasicGetResult got)
    {
        var properties = RabbitMqProperties.FromAmqp(got.BasicProperties);
        var bytes = got.Body.ToArray();
        object body = bytes;
        if (properties.MessageType is { Length: > 0 } name && MessageTypeNames.TryResolve(name, out var type, out _) && type is not null)
        {
            try
            {
                body = broker.Serializer.Deserialize(bytes, type) ?? bytes;
            }
#pragma warning disable CA1031 // A body that does not read as its type is shown as bytes; a peek must not fail on it.
            catch (Exception)
#pragma warning restore CA1031
            {
                body = bytes;
            }
        }

        var headers = got.BasicProperties.Headers;
        var before = headers is not null && headers.TryGetValue("x-delivery-count", out var c) && c is long or int ? Convert.ToInt32(c, System.Globalization.CultureInfo.InvariantCulture) : got.Redelivered ? 1 : 0;
        var (exchange, routingKey) = RabbitMqDelays.Origin(headers, got.Exchange, got.RoutingKey);
        return new PeekedMessage(body, properties, exchange, routingKey, RabbitMqDelays.DeliveredBefore(headers) + before);
    }

    public ValueTask<int> RedriveAsync(string deadLetterQueue, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default) =>
        RedriveAsync(deadLetterQueue, RedriveTarget.LastDeath, maxMessages, cancellationToken);

    public ValueTask<int> RedriveAsync(string deadLetterQueue, RedriveTarget target, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(deadLetterQueue);
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        if (!Enum.IsDefined(target))
        {
            throw new ArgumentOutOfRangeException(nameof(target), target, "Not a RedriveTarget.");
        }

        ThrowIfDisposed();
        return new ValueTask<int>(new RabbitMqRedrive(broker, deadLetterQueue, target).RunAsync(maxMessages, cancellationToken));
    }

    /// <summary>Runs <paramref name="operation"/> on a channel of its own, closed after it.</summary>
    internal Task WithChannelAsync(Func<IChannel, Task> operation, CancellationToken cancellationToken) =>
        broker.Recovery.RunAsync(
            async () =>
            {
                var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(broker.Connection, cancellationToken: cancellationToken).ConfigureAwait(false);
                await using (channel.ConfigureAwait(false))
                {
                    await operation(channel).ConfigureAwait(false);
                }

                return true;
            },
            "a management operation",
            cancellationToken); // while the connection is down, it waits for it (RecoveryTimeout)

    private static T Run<T>(Func<Task<T>> operation) => Task.Run(operation).GetAwaiter().GetResult(); // a synchronous member over AMQP

    public ValueTask DisposeAsync()
    {
        _disposed = true;
        return ValueTask.CompletedTask;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
