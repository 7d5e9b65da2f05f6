using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MessageQueue.Consuming;
using MessageQueue.Publishing;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMq;

/// <summary>A message a RabbitMQ consumer received: its body (copied out of the client's buffer), properties and
/// delivery tag, and whether it was settled.</summary>
internal sealed class RabbitMqMessage(object body, byte[] raw, IReadOnlyBasicProperties properties, string exchange, string routingKey, ulong deliveryTag, int deliveryCount)
{
    private MessageProperties? _properties;
    private int _settled;

    internal object Body { get; } = body;

    /// <summary>Gets the body as it arrived (to dead-letter it with a reason).</summary>
    internal byte[] Raw { get; } = raw;

    /// <summary>Gets the AMQP properties as they arrived.</summary>
    internal IReadOnlyBasicProperties Amqp { get; } = properties;

    internal string Exchange { get; } = exchange;

    internal string RoutingKey { get; } = routingKey;

    internal ulong DeliveryTag { get; } = deliveryTag;

    internal int DeliveryCount { get; } = deliveryCount;

    internal MessageProperties Properties => _properties ??= RabbitMqProperties.FromAmqp(Amqp);

    /// <summary>Gets whether the message was settled (acked, nacked or rejected).</summary>
    internal bool IsSettled => Volatile.Read(ref _settled) != 0;

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
    private readonly RabbitMqDeadLetters? _deadLetters;
    private readonly bool _autoAck;
    private readonly Channel<RabbitMqMessage> _received = Channel.CreateUnbounded<RabbitMqMessage>(new UnboundedChannelOptions { SingleWriter = true });
    private string? _consumerTag;
    private int _disposed;

    private RabbitMqConsumer(IChannel channel, string queue, bool autoAck, IMessageSerializer serializer, RabbitMqDeadLetters? deadLetters)
    {
        _channel = channel;
        Queue = queue;
        _autoAck = autoAck;
        _serializer = serializer;
        _deadLetters = deadLetters;
    }

    /// <summary>Gets or sets what runs once when the consumer is disposed (the broker forgets it).</summary>
    internal Action? Disposed { get; set; }

    public string Queue { get; }

    /// <summary>Opens a channel and starts consuming <paramref name="queue"/>.</summary>
    internal static async Task<RabbitMqConsumer<T>> StartAsync(IConnection connection, string queue, ConsumerOptions options, IMessageSerializer serializer, RabbitMqDeadLetters? deadLetters = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Prefetch, ushort.MaxValue, "options.Prefetch");
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var consumer = new RabbitMqConsumer<T>(channel, queue, options.AckMode == AckMode.Auto, serializer, deadLetters);
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
        var body = e.Body.ToArray(); // the client reuses its buffer after this handler returns
        object? message;
        string? problem;
        Exception? failure = null;
        var count = 1;
        try
        {
            count = DeliveryCount(e);
            (message, problem) = TryRead(body, e.BasicProperties);
        }
#pragma warning disable CA1031 // Whatever fails in reading a delivery, it is dead-lettered, never left unsettled.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            (message, problem, failure) = (null, $"The message could not be read as a '{typeof(T).FullName}': {ex.Message}; it was dead-lettered instead of delivered.", ex);
        }

        var received = new RabbitMqMessage(message ?? body, body, e.BasicProperties, e.Exchange, e.RoutingKey, e.DeliveryTag, count);
        if (message is not null)
        {
            _received.Writer.TryWrite(received);
        }
        else
        {
            await ((IDeliverySource)this).RejectAsync(received, 0, problem, failure).ConfigureAwait(false); // dead-lettered with the reason
        }
    }

    /// <summary>The quorum queue's <c>x-delivery-count</c> (an integer the server sets) plus one; otherwise 2 for a
    /// redelivery and 1 for a first delivery. A value of another type (another application's header) is ignored.</summary>
    private static int DeliveryCount(BasicDeliverEventArgs e) =>
        e.BasicProperties.Headers is { } h && h.TryGetValue("x-delivery-count", out var c) && c is long or int && Convert.ToInt64(c, System.Globalization.CultureInfo.InvariantCulture) is var n and >= 0 and < int.MaxValue
            ? (int)n + 1
            : e.Redelivered ? 2 : 1;

    /// <summary>The body as a <typeparamref name="T"/>, or null and why not: its AMQP type names another type, or it
    /// cannot be deserialized as a <typeparamref name="T"/> (the reasons the in-memory broker gives).</summary>
    private (object? Message, string? Problem) TryRead(byte[] body, IReadOnlyBasicProperties properties)
    {
        // Its type name says what it is: a type this process knows that is not a T (a subtype is one) is refused, as
        // in memory; an unknown name (another application's) is judged by whether the body reads as a T.
        if (properties.Type is { Length: > 0 } type && type != MessageTypeNames.NameOf(typeof(T))
            && MessageTypeNames.TryResolve(type, out var named, out _) && named is not null && !typeof(T).IsAssignableFrom(named))
        {
            return (null, $"The message body is a '{named.FullName}', which is not a '{typeof(T).FullName}' as the consumer expects; it was dead-lettered instead of delivered.");
        }

        var value = _serializer.Deserialize(body, typeof(T)); // a failure is the caller's: dead-lettered with the exception
        return value is T ? (value, null) : (null, $"The message body read as {(value is null ? "null" : $"a '{value.GetType().FullName}'")}, which is not a '{typeof(T).FullName}' as the consumer expects; it was dead-lettered instead of delivered.");
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
        Disposed?.Invoke();
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
        (reason ?? (object?)exception) is not null && _deadLetters is not null && _deadLetters.Knows(Queue)
            ? DeadLetterAsync((RabbitMqMessage)message, reason, exception)
            : SettleAsync(message, static (channel, deliveryTag, _) => channel.BasicRejectAsync(deliveryTag, requeue: false), requeue: false); // RabbitMQ dead-letters it

    /// <summary>A reject with a reason or an exception: RabbitMQ's reject cannot carry them, so the transport publishes
    /// the dead letter itself (with the <c>x-death</c> record RabbitMQ would write, and the reason and exception
    /// headers), waits for the confirm, and only then acks the delivery. A crash in between dead-letters it twice
    /// (at least once, never lost); a dead letter that cannot be published falls back to a plain reject.</summary>
    private async ValueTask<SettleResult> DeadLetterAsync(RabbitMqMessage message, string? reason, Exception? exception)
    {
        if (Settle(message) is { } refused)
        {
            return refused;
        }

        var published = await _deadLetters!.TryPublishAsync(Queue, message, reason, exception).ConfigureAwait(false);
        try
        {
            if (published)
            {
                await _channel.BasicAckAsync(message.DeliveryTag, multiple: false).ConfigureAwait(false);
            }
            else
            {
                await _channel.BasicRejectAsync(message.DeliveryTag, requeue: false).ConfigureAwait(false);
            }
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return SettleResult.ConsumerGone;
        }

        return SettleResult.Ok;
    }

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
