using MessageQueue.Consuming;
using MessageQueue.Queues;

namespace MessageQueue;

/// <summary>
/// One hand-over of a message to a consumer. Settle it once: <see cref="AckAsync"/>, <see cref="NackAsync"/>
/// or <see cref="RejectAsync"/>. A struct, so a delivery costs no allocation.
/// </summary>
/// <typeparam name="T">The message type.</typeparam>
public readonly struct Delivery<T> : IEquatable<Delivery<T>>
{
    // The backend (the engine's consumer, later a RabbitMQ channel or a test fake), its handle of the message, and
    // the delivery's tag: no engine type is needed to make or use a delivery.
    private readonly IDeliverySource? _source;
    private readonly object? _message;
    private readonly int _tag;

    internal Delivery(object message, IDeliverySource source, int tag, int deliveryCount)
    {
        _message = message;
        _source = source;
        _tag = tag;
        DeliveryCount = deliveryCount;
    }

    /// <summary>Gets the message body (the published object itself: in memory nothing is copied).</summary>
    public T Message => (T)(_message is QueueEntry entry ? entry.Body : Source.Body(Handle)); // the engine's entry without a virtual call

    /// <summary>Gets the message properties.</summary>
    public MessageProperties Properties => Source.Properties(Handle);

    /// <summary>Gets the name of the queue the message was delivered from.</summary>
    public string Queue => Source.Queue;

    /// <summary>Gets the exchange the message was published (or dead-lettered) to.</summary>
    public string Exchange => Source.Exchange(Handle);

    /// <summary>Gets the routing key the message was published (or dead-lettered) with.</summary>
    public string RoutingKey => Source.RoutingKey(Handle);

    /// <summary>Gets how many times the message has been delivered, this delivery included (1 the first time).</summary>
    public int DeliveryCount { get; }

    /// <summary>Gets whether the message was delivered before.</summary>
    public bool Redelivered => DeliveryCount > 1;

    /// <summary>Gets what the delivery's source knows the message by (a transport's subscription settles through it).</summary>
    internal object SourceHandle => Handle;

    private object Handle => _message ?? throw new InvalidOperationException("This Delivery is default; only deliveries received from a consumer can be used.");

    private IDeliverySource Source => _source ?? throw new InvalidOperationException("This Delivery is default; only deliveries received from a consumer can be used.");

    /// <summary>Acknowledges the message: it leaves the queue.</summary>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the ack took effect.</returns>
    /// <exception cref="InvalidOperationException">The delivery was already settled, was returned to the queue
    /// (ack timeout, consumer disposed), or came from an <see cref="AckMode.Auto"/> consumer.</exception>
    public ValueTask AckAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return Complete(CheckManual().AckAsync(Handle, _tag));
    }

    /// <summary>Negatively acknowledges the message.</summary>
    /// <param name="requeue">Whether the message returns to its place in the queue (<see langword="true"/>), or is
    /// dead-lettered with reason <c>rejected</c> (<see langword="false"/>).</param>
    /// <param name="delay">How long the requeued message waits before it is ready again; <see langword="null"/>
    /// uses the queue's <see cref="QueueOptions.Redelivery"/> policy.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the nack took effect.</returns>
    /// <exception cref="InvalidOperationException">As for <see cref="AckAsync"/>.</exception>
    public ValueTask NackAsync(bool requeue = true, TimeSpan? delay = null, CancellationToken cancellationToken = default)
    {
        if (delay is { } d)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(d, TimeSpan.Zero, nameof(delay));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return Complete(CheckManual().NackAsync(Handle, _tag, requeue, delay));
    }

    /// <summary>Rejects the message: it is dead-lettered with reason <c>rejected</c> (or dropped when the queue has
    /// no dead-letter target). The reason, when given, travels in the <c>x-rejection-reason</c> header.</summary>
    /// <param name="reason">Why the message was rejected, for whoever reads the dead letters.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the reject took effect.</returns>
    /// <exception cref="InvalidOperationException">As for <see cref="AckAsync"/>.</exception>
    public ValueTask RejectAsync(string? reason = null, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        return Complete(CheckManual().RejectAsync(Handle, _tag, reason, exception: null));
    }

    internal SettleResult TryRetry(TimeSpan delay) => Source.Nack(Handle, _tag, requeue: true, delay);

    internal SettleResult TryFail(Exception exception) => Source.Reject(Handle, _tag, reason: null, exception);

    private IDeliverySource CheckManual()
    {
        var source = Source;
        return source.AutoAck
            ? throw new InvalidOperationException(
                $"The consumer of queue '{source.Queue}' uses AckMode.Auto: the message was acknowledged when it was delivered. Use AckMode.Manual to settle deliveries yourself.")
            : source;
    }

    private ValueTask Complete(ValueTask<SettleResult> settling) =>
        settling.IsCompletedSuccessfully ? Complete(settling.Result) : CompleteAsync(this, settling);

    private static async ValueTask CompleteAsync(Delivery<T> delivery, ValueTask<SettleResult> settling) =>
        await delivery.Complete(await settling.ConfigureAwait(false)).ConfigureAwait(false);

    private ValueTask Complete(SettleResult result) => result switch
    {
        SettleResult.Ok => ValueTask.CompletedTask,
        SettleResult.AlreadySettled => throw new InvalidOperationException(
            $"Delivery {DeliveryCount} of message '{Properties.MessageId}' from queue '{Queue}' was already acknowledged, nacked or rejected; a delivery can be settled once."),
        SettleResult.TimedOut => throw new InvalidOperationException(
            $"Delivery {DeliveryCount} of message '{Properties.MessageId}' from queue '{Queue}' is no longer valid: its ack timeout ({Source.AckTimeout}) passed and the message was returned to the queue, to be redelivered."),
        SettleResult.ConsumerGone => throw new InvalidOperationException(
            $"The consumer that received message '{Properties.MessageId}' from queue '{Queue}' was disposed; the message was returned to the queue and will be redelivered."),
        _ => throw new InvalidOperationException(
            $"Queue '{Queue}' was deleted, and message '{Properties.MessageId}' with it; there is nothing left to settle."),
    };

    /// <inheritdoc/>
    public bool Equals(Delivery<T> other) => ReferenceEquals(_message, other._message) && _tag == other._tag;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Delivery<T> other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_message, _tag);

    /// <summary>Compares two deliveries.</summary>
    /// <param name="left">The first.</param>
    /// <param name="right">The second.</param>
    /// <returns>Whether they are the same delivery.</returns>
    public static bool operator ==(Delivery<T> left, Delivery<T> right) => left.Equals(right);

    /// <summary>Compares two deliveries.</summary>
    /// <param name="left">The first.</param>
    /// <param name="right">The second.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(Delivery<T> left, Delivery<T> right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => _message is null ? "(default)" : $"{Queue} #{DeliveryCount}: {Message}";
}
