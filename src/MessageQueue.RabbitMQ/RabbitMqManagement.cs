using MessageQueue.Routing;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Runtime management on the RabbitMQ server, over AMQP alone (no management HTTP API). Each operation uses a channel
/// of its own, since an operation RabbitMQ refuses closes its channel. What AMQP cannot tell is documented on each
/// member and in the README: whether a binding existed before it was removed, queue counters beyond the ready count
/// and consumers, the names of queues this broker did not declare, and a non-destructive peek.
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

    /// <summary>What AMQP tells of a queue (a passive declare): its ready messages and consumers. The other counters are
    /// zero: RabbitMQ keeps them in its management plugin, which this transport does not ask yet.</summary>
    public QueueInfo GetQueueInfo(string queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ThrowIfDisposed();
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

    /// <summary>The queues this broker declared (at <c>Build()</c> or through this management) and has not deleted:
    /// AMQP cannot list a server's queues.</summary>
    public IReadOnlyList<string> GetQueueNames() => [.. broker.Queues.Keys.Order(StringComparer.Ordinal)];

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

    /// <summary>Refused: AMQP can only read a message by taking it (<c>basic.get</c>), which marks it redelivered and,
    /// on a quorum queue, counts a delivery; a peek must not change the queue.</summary>
    public ValueTask<IReadOnlyList<PeekedMessage>> PeekAsync(string queue, int maxMessages = 100, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"The RabbitMQ transport cannot peek at queue '{queue}': AMQP reads a message only by taking it, which marks it redelivered (and counts a delivery on a quorum queue). Consume it, or use RabbitMQ's management UI.");

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
    internal async Task WithChannelAsync(Func<IChannel, Task> operation, CancellationToken cancellationToken)
    {
        var channel = await broker.Connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await using (channel.ConfigureAwait(false))
        {
            await operation(channel).ConfigureAwait(false);
        }
    }

    private static T Run<T>(Func<Task<T>> operation) => Task.Run(operation).GetAwaiter().GetResult(); // a synchronous member over AMQP

    public ValueTask DisposeAsync()
    {
        _disposed = true;
        return ValueTask.CompletedTask;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
