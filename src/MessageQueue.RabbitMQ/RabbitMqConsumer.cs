using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MessageQueue.Consuming;
using MessageQueue.Publishing;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMq;

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
internal sealed partial class RabbitMqConsumer<T> : IConsumer<T>, IDeliverySource
{
    private readonly IConnection _connection;
    private readonly ushort _prefetch;
    private readonly IMessageSerializer _serializer;
    private readonly RabbitMqDeadLetters? _deadLetters;
    private readonly RabbitMqDelays? _delays;
    private readonly bool _autoAck;
    private readonly Channel<RabbitMqMessage> _received = Channel.CreateUnbounded<RabbitMqMessage>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly Lock _gate = new();
    private IChannel? _channel;
    private string? _consumerTag;
    private int _epoch;
    private CancellationTokenSource _lost = new();
    private int _disposed;

    private RabbitMqConsumer(IConnection connection, string queue, ushort prefetch, bool autoAck, IMessageSerializer serializer, RabbitMqDeadLetters? deadLetters, RabbitMqDelays? delays)
    {
        _connection = connection;
        _prefetch = prefetch;
        _delays = delays;
        Queue = queue;
        _autoAck = autoAck;
        _serializer = serializer;
        _deadLetters = deadLetters;
    }

    /// <summary>Gets or sets what runs once when the consumer is disposed (the broker forgets it).</summary>
    internal Action? Disposed { get; set; }

    public string Queue { get; }

    /// <summary>Opens a channel and starts consuming <paramref name="queue"/>.</summary>
    internal static async Task<RabbitMqConsumer<T>> StartAsync(IConnection connection, string queue, ConsumerOptions options, IMessageSerializer serializer, RabbitMqDeadLetters? deadLetters = null, RabbitMqDelays? delays = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Prefetch, ushort.MaxValue, "options.Prefetch");
        var consumer = new RabbitMqConsumer<T>(connection, queue, (ushort)options.Prefetch, options.AckMode == AckMode.Auto, serializer, deadLetters, delays);
        await consumer.OpenAsync(cancellationToken).ConfigureAwait(false);
        return consumer;
    }

    /// <summary>Opens a channel and consumes the queue on it: at the start, and again when the server closed the
    /// previous channel (an error on it, such as its consumer_timeout) while the connection stayed up. A connection
    /// that drops is the client's to recover, with this channel and its consumer.</summary>
    private async Task OpenAsync(CancellationToken cancellationToken)
    {
        var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(_connection, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.BasicQosAsync(0, _prefetch, global: false, cancellationToken).ConfigureAwait(false);
            var listener = new AsyncEventingBasicConsumer(channel);
            listener.ReceivedAsync += (_, e) => OnReceivedAsync(channel, e);
            listener.ShutdownAsync += (_, e) => OnShutdown(channel, e);
            listener.UnregisteredAsync += (_, _) =>
            {
                // The server cancelled the consumer while the channel is open: its queue was deleted. (A closing
                // channel unregisters its consumer too; OnShutdown handles that.)
                if (channel.IsOpen && ReferenceEquals(channel, Volatile.Read(ref _channel)))
                {
                    _received.Writer.TryComplete(new TopologyException($"Queue '{Queue}' was deleted on the RabbitMQ server; its consumer stopped."));
                }

                return Task.CompletedTask;
            };
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                _channel = channel;
            }

            // Acks are always explicit on the wire, AckMode.Auto included: the server's no-ack mode ignores the prefetch
            // and acks what is still in this consumer's buffer, which disposing would lose. Auto acks each delivery as
            // it is handed to the code, as in memory.
            _consumerTag = await channel.BasicConsumeAsync(Queue, autoAck: false, listener, cancellationToken).ConfigureAwait(false);
        }
        catch (global::RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw new TopologyException($"Queue '{Queue}' does not exist on the RabbitMQ server; declare it before consuming from it.", ex);
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The channel closed: what it delivered and this consumer had not settled is the server's again (it
    /// requeues it), so the buffer is emptied and those deliveries can no longer be settled. If the connection is up,
    /// the server closed this channel for an error: a new one is opened. If it is down, the client recovers the
    /// connection, this channel and its consumer, and deliveries resume.</summary>
    private Task OnShutdown(IChannel channel, ShutdownEventArgs e)
    {
        if (Volatile.Read(ref _disposed) != 0 || !ReferenceEquals(channel, Volatile.Read(ref _channel)))
        {
            return Task.CompletedTask;
        }

        Interlocked.Increment(ref _epoch);
        _ = Interlocked.Exchange(ref _lost, new CancellationTokenSource()).CancelAsync(); // retries held in place end
        while (_received.Reader.TryRead(out _))
        {
            // requeued by the server: handed out again after the recovery
        }

        if (e.Initiator == ShutdownInitiator.Application && _connection.IsOpen)
        {
            _received.Writer.TryComplete(); // closed by this process, not by the server or the network
        }
        else if (_connection.IsOpen)
        {
            _ = ReopenAsync(channel);
        }

        return Task.CompletedTask;
    }

    private Task ReopenAsync(IChannel closed) => RabbitMqReopen.RunAsync(
        closed,
        () => OpenAsync(CancellationToken.None),
        () => Volatile.Read(ref _disposed) != 0,
        ex =>
        {
            if (ex is not TopologyException)
            {
                return false;
            }

            _received.Writer.TryComplete(ex); // the queue is gone
            return true;
        });

    private async Task OnReceivedAsync(IChannel channel, BasicDeliverEventArgs e)
    {
        object? message;
        string? problem;
        Exception? failure = null;
        var count = 1;
        try
        {
            count = DeliveryCount(e);
            (message, problem) = TryRead(e.Body.Span, e.BasicProperties);
        }
#pragma warning disable CA1031 // Whatever fails in reading a delivery, it is dead-lettered, never left unsettled.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            (message, problem, failure) = (null, $"The message could not be read as a '{typeof(T).FullName}': {ex.Message}; it was dead-lettered instead of delivered.", ex);
        }

        // The client reuses its buffer after this handler returns: the bytes are copied into a rented array, given back
        // when the delivery is settled (RabbitMqMessage.Release). One that cannot be read keeps an array of its own.
        var length = e.Body.Length;
        var rent = message is not null && length > 0;
        var body = rent ? ArrayPool<byte>.Shared.Rent(length) : e.Body.ToArray();
        e.Body.Span.CopyTo(body);
        var (exchange, routingKey) = RabbitMqDelays.Origin(e.BasicProperties.Headers, e.Exchange, e.RoutingKey);
        var received = new RabbitMqMessage(message ?? body, body, length, rent, e.BasicProperties, exchange, routingKey, e.DeliveryTag, count, channel, Volatile.Read(ref _epoch), Volatile.Read(ref _lost).Token);
        if (message is null)
        {
            await ((IDeliverySource)this).RejectAsync(received, 0, problem, failure).ConfigureAwait(false); // dead-lettered with the reason
        }
        else if (count > 1 && _deadLetters?.Options(Queue)?.MaxDeliveryCount is { } limit && count > limit)
        {
            // Past the queue's delivery limit counting the deliveries before a delayed redelivery (which RabbitMQ's
            // x-delivery-limit does not see: the delayed copy is a new message to it).
            await DeadLetterAsync(received, reason: null, exception: null, DeathRecord.DeliveryLimit).ConfigureAwait(false);
        }
        else
        {
            _received.Writer.TryWrite(received);
        }
    }

    /// <summary>The quorum queue's <c>x-delivery-count</c> (an integer the server sets) plus one; otherwise 2 for a
    /// redelivery and 1 for a first delivery. A value of another type (another application's header) is ignored.</summary>
    private static int DeliveryCount(BasicDeliverEventArgs e) =>
        RabbitMqDelays.DeliveredBefore(e.BasicProperties.Headers) + (
        e.BasicProperties.Headers is { } h && h.TryGetValue("x-delivery-count", out var c) && c is long or int && Convert.ToInt64(c, System.Globalization.CultureInfo.InvariantCulture) is var n and >= 0 and < int.MaxValue / 2
            ? (int)n + 1
            : e.Redelivered ? 2 : 1);

    /// <summary>The body as a <typeparamref name="T"/>, or null and why not: its AMQP type names another type, or it
    /// cannot be deserialized as a <typeparamref name="T"/> (the reasons the in-memory broker gives).</summary>
    private (object? Message, string? Problem) TryRead(ReadOnlySpan<byte> body, IReadOnlyBasicProperties properties)
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
    private static ValueTask AutoAckAsync(RabbitMqMessage message)
    {
        message.TrySettle();
        message.Release(); // an auto-acked delivery is never settled again: nothing republishes its bytes
        return message.Channel.BasicAckAsync(message.DeliveryTag, multiple: false);
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

    private Delivery<T> Wrap(RabbitMqMessage message)
    {
        if (Diagnostics.BrokerTracing.Source.HasListeners())
        {
            Diagnostics.BrokerTracing.StartConsume(Queue, message.Properties, message.RoutingKey, message.DeliveryCount, process: false)?.Dispose(); // a receive span
        }

        return new(message, this, tag: 0, message.DeliveryCount);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _received.Writer.TryComplete();
        Disposed?.Invoke();
        IChannel? channel;
        lock (_gate)
        {
            channel = _channel; // a reopening after this sees the consumer disposed and closes its own channel
        }

        if (channel is null)
        {
            return;
        }

        try
        {
            if (_consumerTag is not null && channel.IsOpen)
            {
                await channel.BasicCancelAsync(_consumerTag).ConfigureAwait(false);
            }

            await channel.CloseAsync().ConfigureAwait(false); // the server requeues what was not settled
        }
        catch (Exception ex) when (ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or global::RabbitMQ.Client.Exceptions.OperationInterruptedException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The server or the network closed it first: it requeued what was not settled. (Disposed: the server closed
            // it and RabbitMqReopen disposed it before a new one was in place; that one sees this consumer disposed.)
        }
        finally
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }
}
