using MessageQueue.Consuming;

namespace MessageQueue.Testing;

/// <summary>How a <see cref="TestDelivery{T}"/> was settled.</summary>
public enum Settlement
{
    /// <summary>Not settled (yet).</summary>
    None,

    /// <summary><see cref="Delivery{T}.AckAsync"/>.</summary>
    Acked,

    /// <summary><see cref="Delivery{T}.NackAsync"/> with <c>requeue</c> true: back to its queue.</summary>
    Requeued,

    /// <summary><see cref="Delivery{T}.NackAsync"/> with <c>requeue</c> false: dead-lettered.</summary>
    NackedToDeadLetter,

    /// <summary><see cref="Delivery{T}.RejectAsync"/>, or a subscription's dead-lettering of a failed handler.</summary>
    Rejected,
}

/// <summary>Creates deliveries for unit tests of handlers: no broker, every settle recorded.</summary>
public static class TestDelivery
{
    /// <summary>A delivery of <paramref name="message"/> that records how it is settled.</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="message">The message.</param>
    /// <param name="properties">Its properties; new ones (a generated id, now) when null.</param>
    /// <param name="deliveryCount">Which delivery this is (2 or more: a redelivery).</param>
    /// <param name="queue">The queue it seems to come from.</param>
    /// <param name="exchange">The exchange it was published to.</param>
    /// <param name="routingKey">Its routing key.</param>
    /// <returns>The recording delivery; pass <see cref="TestDelivery{T}.Delivery"/> to the handler.</returns>
    public static TestDelivery<T> Create<T>(T message, MessageProperties? properties = null, int deliveryCount = 1, string queue = "test", string exchange = "", string? routingKey = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentOutOfRangeException.ThrowIfLessThan(deliveryCount, 1);
        ArgumentException.ThrowIfNullOrEmpty(queue);
        properties ??= new MessageProperties
        {
            MessageId = Queues.MessageIds.New(),
            Timestamp = TimeProvider.System.GetUtcNow(),
            MessageType = MessageTypeNames.NameOf(message.GetType()), // as the broker sets them
        };
        return new TestDelivery<T>(message, properties, deliveryCount, queue, exchange, routingKey ?? queue);
    }
}

/// <summary>A delivery for a unit test, and how the code under test settled it.</summary>
/// <typeparam name="T">The message type.</typeparam>
public sealed class TestDelivery<T> : IDeliverySource
{
    private readonly object _message;
    private readonly MessageProperties _properties;
    private readonly string _exchange;
    private readonly string _routingKey;
    private readonly Lock _sync = new();

    internal TestDelivery(T message, MessageProperties properties, int deliveryCount, string queue, string exchange, string routingKey)
    {
        _message = message!;
        _properties = properties;
        _exchange = exchange;
        _routingKey = routingKey;
        Queue = queue;
        Delivery = new Delivery<T>(new object(), this, tag: 1, deliveryCount);
    }

    /// <summary>Gets the delivery to hand to the code under test.</summary>
    public Delivery<T> Delivery { get; }

    /// <summary>Gets how it was settled.</summary>
    public Settlement Settlement { get; private set; }

    /// <summary>Gets the delay a requeue asked for (null: the queue's policy, or not requeued).</summary>
    public TimeSpan? Delay { get; private set; }

    /// <summary>Gets the reason a reject gave.</summary>
    public string? Reason { get; private set; }

    /// <summary>Gets the exception a subscription dead-lettered it with.</summary>
    public Exception? Exception { get; private set; }

    /// <summary>Gets how many times the code tried to settle it again after the first (each such call threw, as the
    /// broker's would).</summary>
    public int ExtraSettles { get; private set; }

    /// <inheritdoc/>
    public override string ToString() => $"{Queue} #{Delivery.DeliveryCount}: {_message} ({Settlement})";

    /// <summary>The queue it seems to come from.</summary>
    public string Queue { get; }

    bool IDeliverySource.AutoAck => false;

    TimeSpan? IDeliverySource.AckTimeout => null;

    object IDeliverySource.Body(object message) => _message;

    MessageProperties IDeliverySource.Properties(object message) => _properties;

    string IDeliverySource.Exchange(object message) => _exchange;

    string IDeliverySource.RoutingKey(object message) => _routingKey;

    SettleResult IDeliverySource.Ack(object message, int tag) => Settle(Settlement.Acked);

    SettleResult IDeliverySource.Nack(object message, int tag, bool requeue, TimeSpan? delay) =>
        Settle(requeue ? Settlement.Requeued : Settlement.NackedToDeadLetter, delay: delay);

    SettleResult IDeliverySource.Reject(object message, int tag, string? reason, Exception? exception) =>
        Settle(Settlement.Rejected, reason, exception: exception);

    private SettleResult Settle(Settlement settlement, string? reason = null, TimeSpan? delay = null, Exception? exception = null)
    {
        lock (_sync)
        {
            if (Settlement != Settlement.None)
            {
                ExtraSettles++;
                return SettleResult.AlreadySettled;
            }

            Settlement = settlement;
            Reason = reason;
            Delay = delay;
            Exception = exception;
            return SettleResult.Ok;
        }
    }
}
