using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MessageQueue.Consuming;
using MessageQueue.Publishing;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMq;

/// <summary>A message a RabbitMQ consumer received: its body (copied out of the client's buffer), properties and
/// delivery tag, and whether it was settled.</summary>
internal sealed class RabbitMqMessage(object body, IReadOnlyBasicProperties properties, string exchange, string routingKey, ulong deliveryTag, int deliveryCount)
{
    private MessageProperties? _properties;
    private int _settled;

    internal object Body { get; } = body;

    internal string Exchange { get; } = exchange;

    internal string RoutingKey { get; } = routingKey;

    internal ulong DeliveryTag { get; } = deliveryTag;

    internal int DeliveryCount { get; } = deliveryCount;

    internal MessageProperties Properties => _properties ??= RabbitMqProperties.FromAmqp(properties);

    /// <summary>Marks the message settled; false when it already was.</summary>
    internal bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;
}

/// <summary>
/// A pull consumer on a RabbitMQ queue (issue 18, point 4): <c>basic.qos</c> with the prefetch, <c>basic.consume</c>
/// with explicit acks on the wire (<see cref="AckMode.Auto"/> acks each delivery as the code takes it, as in memory;
/// RabbitMQ's own no-ack mode would ignore the prefetch and lose what a disposed consumer had not handed out),
/// deliveries handed to <see cref="ReceiveAsync"/> in order; a deleted queue ends a waiting receive with a
/// <see cref="TopologyException"/>. Acks, nacks and rejects
/// go to the server; disposing cancels the consumer and closes its channel, so the server requeues whatever was not
/// settled. <see cref="Delivery{T}.DeliveryCount"/> is the quorum queue's <c>x-delivery-count</c> plus one, or, on a
/// classic queue, 2 for a redelivery and 1 otherwise (RabbitMQ counts no further there). A body that is not a
/// <typeparamref name="T"/> (its AMQP type names a known type that is not one) or cannot be deserialized as one is
/// rejected without requeue, so RabbitMQ dead-letters it (reason <c>rejected</c>; RabbitMQ carries no text with a
/// reject).
/// </summary>
internal sealed class RabbitMqConsumer<T> : IConsumer<T>, IDeliverySource
{
    private readonly IChannel _channel;
    private readonly IMessageSerializer _serializer;
    private readonly bool _autoAck;
    private readonly Channel<RabbitMqMessage> _received = Channel.CreateUnbounded<RabbitMqMessage>(new UnboundedChannelOptions { SingleWriter = true });
    private string? _consumerTag;
    private int _disposed;

    private RabbitMqConsumer(IChannel channel, string queue, bool autoAck, IMessageSerializer serializer)
    {
        _channel = channel;
        Queue = queue;
        _autoAck = autoAck;
        _serializer = serializer;
    }

    public string Queue { get; }

    /// <summary>Opens a channel and starts consuming <paramref name="queue"/>.</summary>
    internal static async Task<RabbitMqConsumer<T>> StartAsync(IConnection connection, string queue, ConsumerOptions options, IMessageSerializer serializer, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Prefetch, ushort.MaxValue, "options.Prefetch");
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var consumer = new RabbitMqConsumer<T>(channel, queue, options.AckMode == AckMode.Auto, serializer);
        try
        {
            await channel.BasicQosAsync(0, (ushort)options.Prefetch, global: false, cancellationToken).ConfigureAwait(false);
            var listener = new AsyncEventingBasicConsumer(channel);
            listener.ReceivedAsync += consumer.OnReceivedAsync;
            listener.ShutdownAsync += (_, _) =>
            {
                consumer._received.Writer.TryComplete();
                return Task.CompletedTask;
            };
            listener.UnregisteredAsync += (_, _) =>
            {
                // The server cancelled the consumer (its queue was deleted), or this consumer was disposed (then the
                // buffer is complete already and this changes nothing).
                consumer._received.Writer.TryComplete(new TopologyException($"Queue '{queue}' was deleted on the RabbitMQ server; its consumer stopped."));
                return Task.CompletedTask;
            };

            // Acks are always explicit on the wire, AckMode.Auto included: the server's no-ack mode ignores the prefetch
            // and acks what is still in this consumer's buffer, which disposing would lose. Auto acks each delivery as
            // it is handed to the code, as in memory.
            consumer._consumerTag = await channel.BasicConsumeAsync(queue, autoAck: false, listener, cancellationToken).ConfigureAwait(false);
            return consumer;
        }
        catch (global::RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw new TopologyException($"Queue '{queue}' does not exist on the RabbitMQ server; declare it before consuming from it.", ex);
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task OnReceivedAsync(object sender, BasicDeliverEventArgs e)
    {
        object? message = null;
        var count = 1;
        try
        {
            var body = e.Body.ToArray(); // the client reuses its buffer after this handler returns
            count = DeliveryCount(e);
            message = TryRead(body, e.BasicProperties);
        }
#pragma warning disable CA1031 // Whatever fails in reading a delivery, it is dead-lettered, never left unsettled.
        catch (Exception)
#pragma warning restore CA1031
        {
            message = null;
        }

        if (message is not null)
        {
            _received.Writer.TryWrite(new RabbitMqMessage(message, e.BasicProperties, e.Exchange, e.RoutingKey, e.DeliveryTag, count));
        }
        else
        {
            await _channel.BasicRejectAsync(e.DeliveryTag, requeue: false).ConfigureAwait(false); // dead-lettered by RabbitMQ
        }
    }

    /// <summary>The quorum queue's <c>x-delivery-count</c> (an integer the server sets) plus one; otherwise 2 for a
    /// redelivery and 1 for a first delivery. A value of another type (another application's header) is ignored.</summary>
    private static int DeliveryCount(BasicDeliverEventArgs e) =>
        e.BasicProperties.Headers is { } h && h.TryGetValue("x-delivery-count", out var c) && c is long or int && Convert.ToInt64(c, System.Globalization.CultureInfo.InvariantCulture) is var n and >= 0 and < int.MaxValue
            ? (int)n + 1
            : e.Redelivered ? 2 : 1;

    /// <summary>The body as a <typeparamref name="T"/>, or null when its AMQP type names another type or it cannot be
    /// deserialized.</summary>
    private object? TryRead(byte[] body, IReadOnlyBasicProperties properties)
    {
        // Its type name says what it is: a type this process knows that is not a T (a subtype is one) is refused, as
        // in memory; an unknown name (another application's) is judged by whether the body reads as a T.
        if (properties.Type is { Length: > 0 } type && type != MessageTypeNames.NameOf(typeof(T))
            && MessageTypeNames.TryResolve(type, out var named, out _) && named is not null && !typeof(T).IsAssignableFrom(named))
        {
            return null;
        }

        try
        {
            return _serializer.Deserialize(body, typeof(T)) is T value ? value : null;
        }
#pragma warning disable CA1031 // Any failure to read the body dead-letters the message, as in memory.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }

    public ValueTask<Delivery<T>> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return TryReceive(out var delivery) ? new(delivery) : ReceiveSlowAsync(cancellationToken);
    }

    private async ValueTask<Delivery<T>> ReceiveSlowAsync(CancellationToken cancellationToken)
    {
        RabbitMqMessage message;
        try
        {
            message = await _received.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex) when (ex.InnerException is TopologyException deleted)
        {
            throw new TopologyException(deleted.Message, ex);
        }
        catch (ChannelClosedException ex)
        {
            throw new ObjectDisposedException($"The consumer of queue '{Queue}' stopped (disposed, or its channel was closed by the server); nothing more can be received.", ex);
        }

        if (_autoAck)
        {
            await AutoAckAsync(message).ConfigureAwait(false);
        }

        return Wrap(message);
    }

    /// <summary>Acks a delivery of an <see cref="AckMode.Auto"/> consumer as it is handed to the code.</summary>
    private ValueTask AutoAckAsync(RabbitMqMessage message)
    {
        message.TrySettle();
        return _channel.BasicAckAsync(message.DeliveryTag, multiple: false);
    }

    public bool TryReceive(out Delivery<T> delivery)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_received.Reader.TryRead(out var message))
        {
            if (_autoAck)
            {
                // A synchronous receive cannot wait for the write; the ack's failure (a closed channel) means the
                // server requeues the message, which is at-least-once, never a loss.
                var acking = AutoAckAsync(message);
                if (!acking.IsCompletedSuccessfully)
                {
                    _ = acking.AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                }
            }

            delivery = Wrap(message);
            return true;
        }

        delivery = default;
        return false;
    }

    public IAsyncEnumerable<Delivery<T>> ReadAllAsync(CancellationToken cancellationToken = default) =>
        ConsumerReads.ReadAllAsync(this, () => Volatile.Read(ref _disposed) != 0, cancellationToken);

    private Delivery<T> Wrap(RabbitMqMessage message) => new(message, this, tag: 0, message.DeliveryCount);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _received.Writer.TryComplete();
        try
        {
            if (_consumerTag is not null && _channel.IsOpen)
            {
                await _channel.BasicCancelAsync(_consumerTag).ConfigureAwait(false);
            }

            await _channel.CloseAsync().ConfigureAwait(false); // the server requeues what was not settled
        }
        finally
        {
            await _channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    // ---- IDeliverySource: what a Delivery<T> of this consumer reaches (the handle is the RabbitMqMessage) ----
    bool IDeliverySource.AutoAck => _autoAck;

    TimeSpan? IDeliverySource.AckTimeout => null;

    object IDeliverySource.Body(object message) => ((RabbitMqMessage)message).Body;

    MessageProperties IDeliverySource.Properties(object message) => ((RabbitMqMessage)message).Properties;

    string IDeliverySource.Exchange(object message) => ((RabbitMqMessage)message).Exchange;

    string IDeliverySource.RoutingKey(object message) => ((RabbitMqMessage)message).RoutingKey;

    // The synchronous settles are the engine's (its subscriptions); this consumer's deliveries settle through the
    // asynchronous ones below, which Delivery<T> calls.
    SettleResult IDeliverySource.Ack(object message, int tag) => ((IDeliverySource)this).AckAsync(message, tag).AsTask().GetAwaiter().GetResult();

    SettleResult IDeliverySource.Nack(object message, int tag, bool requeue, TimeSpan? delay) => ((IDeliverySource)this).NackAsync(message, tag, requeue, delay).AsTask().GetAwaiter().GetResult();

    SettleResult IDeliverySource.Reject(object message, int tag, string? reason, Exception? exception) => ((IDeliverySource)this).RejectAsync(message, tag, reason, exception).AsTask().GetAwaiter().GetResult();

    ValueTask<SettleResult> IDeliverySource.AckAsync(object message, int tag) =>
        SettleAsync(message, static (channel, deliveryTag, _) => channel.BasicAckAsync(deliveryTag, multiple: false), requeue: false);

    ValueTask<SettleResult> IDeliverySource.NackAsync(object message, int tag, bool requeue, TimeSpan? delay)
    {
        if (delay is { } d && d > TimeSpan.Zero)
        {
            throw new NotSupportedException($"RabbitMQ cannot wait {d} before redelivering a nacked message from queue '{Queue}'; nack without a delay (it is requeued at once), or retry with a subscription's retry policy.");
        }

        return SettleAsync(message, static (channel, deliveryTag, requeue) => channel.BasicNackAsync(deliveryTag, multiple: false, requeue), requeue);
    }

    ValueTask<SettleResult> IDeliverySource.RejectAsync(object message, int tag, string? reason, Exception? exception) =>
        SettleAsync(message, static (channel, deliveryTag, _) => channel.BasicRejectAsync(deliveryTag, requeue: false), requeue: false); // RabbitMQ dead-letters it

    /// <summary>Sends a settle of <paramref name="message"/> to the server, once: refused when it was settled before
    /// or this consumer is gone (then, or when the channel closes meanwhile, the server requeued the message).</summary>
    private async ValueTask<SettleResult> SettleAsync(object message, Func<IChannel, ulong, bool, ValueTask> send, bool requeue)
    {
        var m = (RabbitMqMessage)message;
        if (Settle(m) is { } refused)
        {
            return refused;
        }

        try
        {
            await send(_channel, m.DeliveryTag, requeue).ConfigureAwait(false);
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return SettleResult.ConsumerGone;
        }

        return SettleResult.Ok;
    }

    /// <summary>Null when the message may be settled now; otherwise why not (settled before, or this consumer is gone
    /// and the server requeued it).</summary>
    private SettleResult? Settle(RabbitMqMessage message)
    {
        if (Volatile.Read(ref _disposed) != 0 || !_channel.IsOpen)
        {
            return SettleResult.ConsumerGone;
        }

        return message.TrySettle() ? null : SettleResult.AlreadySettled;
    }
}
