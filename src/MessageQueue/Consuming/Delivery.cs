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
    private readonly QueueEntry? _entry;
    private readonly ConsumerCore? _consumer;
    private readonly int _tag;

    internal Delivery(QueueEntry entry, ConsumerCore consumer, int tag, int deliveryCount)
    {
        _entry = entry;
        _consumer = consumer;
        _tag = tag;
        DeliveryCount = deliveryCount;
    }

    /// <summary>Gets the message body (the published object itself: in memory nothing is copied).</summary>
    public T Message => (T)Entry.Body;

    /// <summary>Gets the message properties.</summary>
    public MessageProperties Properties => Entry.GetProperties();

    /// <summary>Gets the name of the queue the message was delivered from.</summary>
    public string Queue => Consumer.Queue.Name;

    /// <summary>Gets the exchange the message was published (or dead-lettered) to.</summary>
    public string Exchange => Entry.Exchange;

    /// <summary>Gets the routing key the message was published (or dead-lettered) with.</summary>
    public string RoutingKey => Entry.RoutingKey;

    /// <summary>Gets how many times the message has been delivered, this delivery included (1 the first time).</summary>
    public int DeliveryCount { get; }

    /// <summary>Gets whether the message was delivered before.</summary>
    public bool Redelivered => DeliveryCount > 1;

    private QueueEntry Entry => _entry ?? throw new InvalidOperationException("This Delivery is default; only deliveries received from a consumer can be used.");

    private ConsumerCore Consumer => _consumer ?? throw new InvalidOperationException("This Delivery is default; only deliveries received from a consumer can be used.");

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

        var consumer = CheckManual();
        return Complete(consumer.Queue.Ack(consumer, Entry, _tag));
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

        var consumer = CheckManual();
        return Complete(consumer.Queue.Nack(consumer, Entry, _tag, requeue, delay));
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

        var consumer = CheckManual();
        return Complete(consumer.Queue.Reject(consumer, Entry, _tag, reason, exception: null));
    }

    internal SettleResult TryRetry(TimeSpan delay) => Consumer.Queue.Nack(Consumer, Entry, _tag, requeue: true, delay);

    internal SettleResult TryFail(Exception exception) => Consumer.Queue.Reject(Consumer, Entry, _tag, reason: null, exception);

    private ConsumerCore CheckManual()
    {
        var consumer = Consumer;
        return consumer.AutoAck
            ? throw new InvalidOperationException(
                $"The consumer of queue '{consumer.Queue.Name}' uses AckMode.Auto: the message was acknowledged when it was delivered. Use AckMode.Manual to settle deliveries yourself.")
            : consumer;
    }

    private ValueTask Complete(SettleResult result) => result switch
    {
        SettleResult.Ok => ValueTask.CompletedTask,
        SettleResult.AlreadySettled => throw new InvalidOperationException(
            $"Delivery {DeliveryCount} of message '{Properties.MessageId}' from queue '{Queue}' was already acknowledged, nacked or rejected; a delivery can be settled once."),
        SettleResult.TimedOut => throw new InvalidOperationException(
            $"Delivery {DeliveryCount} of message '{Properties.MessageId}' from queue '{Queue}' is no longer valid: its ack timeout ({Consumer.Queue.Options.AckTimeout}) passed and the message was returned to the queue, to be redelivered."),
        SettleResult.ConsumerGone => throw new InvalidOperationException(
            $"The consumer that received message '{Properties.MessageId}' from queue '{Queue}' was disposed; the message was returned to the queue and will be redelivered."),
        _ => throw new InvalidOperationException(
            $"Queue '{Queue}' was deleted, and message '{Properties.MessageId}' with it; there is nothing left to settle."),
    };

    /// <inheritdoc/>
    public bool Equals(Delivery<T> other) => ReferenceEquals(_entry, other._entry) && _tag == other._tag;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Delivery<T> other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_entry, _tag);

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
    public override string ToString() => _entry is null ? "(default)" : $"{Queue} #{DeliveryCount}: {Message}";
}
