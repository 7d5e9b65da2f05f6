namespace MessageQueue.Consuming;

/// <summary>
/// What a <see cref="Delivery{T}"/> reaches its backend through: the in-process engine's consumer
/// (<see cref="ConsumerCore"/>), and later a RabbitMQ channel or a test fake. A delivery is the source, the backend's
/// handle of the message (the <c>message</c> argument of each member: the engine's queue entry, a RabbitMQ delivery
/// tag's state, ...) and a tag; the struct stays allocation-free whatever the backend.
/// </summary>
internal interface IDeliverySource
{
    /// <summary>The queue the deliveries come from.</summary>
    string Queue { get; }

    /// <summary>Whether deliveries were acknowledged when handed over (settling them is an error).</summary>
    bool AutoAck { get; }

    /// <summary>The ack timeout, for the error of a late settle; null when the queue has none.</summary>
    TimeSpan? AckTimeout { get; }

    object Body(object message);

    MessageProperties Properties(object message);

    string Exchange(object message);

    string RoutingKey(object message);

    SettleResult Ack(object message, int tag);

    SettleResult Nack(object message, int tag, bool requeue, TimeSpan? delay);

    SettleResult Reject(object message, int tag, string? reason, Exception? exception);

    /// <summary>Acks as <see cref="Ack"/> does, for a backend whose settles go over the network (RabbitMQ); the
    /// engine's are synchronous, and this default is what it uses.</summary>
    ValueTask<SettleResult> AckAsync(object message, int tag) => new(Ack(message, tag));

    /// <summary>Nacks as <see cref="Nack"/> does (see <see cref="AckAsync"/>).</summary>
    ValueTask<SettleResult> NackAsync(object message, int tag, bool requeue, TimeSpan? delay) => new(Nack(message, tag, requeue, delay));

    /// <summary>Rejects as <see cref="Reject"/> does (see <see cref="AckAsync"/>).</summary>
    ValueTask<SettleResult> RejectAsync(object message, int tag, string? reason, Exception? exception) => new(Reject(message, tag, reason, exception));
}
