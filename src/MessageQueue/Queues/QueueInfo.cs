namespace MessageQueue;

/// <summary>A snapshot of a queue's contents and counters, taken atomically.</summary>
public sealed class QueueInfo
{
    /// <summary>Gets the queue name.</summary>
    public required string Name { get; init; }

    /// <summary>Gets how many messages wait for a consumer.</summary>
    public int Ready { get; init; }

    /// <summary>Gets how many messages are delivered and not yet settled (including those in consumers' prefetch windows).</summary>
    public int Unacked { get; init; }

    /// <summary>Gets how many messages wait for a due time (delayed publishes and delayed redeliveries), including
    /// due ones waiting for room in a full <see cref="OverflowPolicy.Block"/> queue.</summary>
    public int Delayed { get; init; }

    /// <summary>Gets how many consumers and subscriptions read the queue.</summary>
    public int Consumers { get; init; }

    /// <summary>Gets how many messages entered the queue (published, dead-lettered into it, or redriven).</summary>
    public long Published { get; init; }

    /// <summary>Gets how many deliveries were made, redeliveries included.</summary>
    public long Delivered { get; init; }

    /// <summary>Gets how many deliveries were acked.</summary>
    public long Acked { get; init; }

    /// <summary>Gets how many deliveries consumers nacked or rejected (requeued, retried or dead-lettered by it), an
    /// ordered subscription's failed attempts retried in place included.</summary>
    public long Nacked { get; init; }

    /// <summary>Gets how many deliveries were redeliveries.</summary>
    public long Redelivered { get; init; }

    /// <summary>Gets how many messages left this queue for a dead-letter target.</summary>
    public long DeadLettered { get; init; }

    /// <summary>Gets how many messages left for a dead-letter reason but had nowhere to go (no target, no route,
    /// or the dead-letter cycle guard) and were dropped.</summary>
    public long Dropped { get; init; }

    /// <summary>Gets how many messages expired in this queue (their time to live passed before delivery).</summary>
    public long Expired { get; init; }

    /// <summary>Gets how many messages a full queue refused (<see cref="OverflowPolicy.RejectPublish"/> and
    /// <see cref="OverflowPolicy.RejectPublishDeadLetter"/>, or dead letters arriving at a full queue that does not drop its head).</summary>
    public long Rejected { get; init; }

    /// <summary>Gets how many publishes the deduplication window recognised as duplicates and did not enqueue.</summary>
    public long Duplicates { get; init; }

    /// <summary>Gets when the message at the head of the queue (the next to be delivered) was published, or null when
    /// nothing is ready in memory (as RabbitMQ's <c>head_message_timestamp</c>; a lazy queue whose window is empty
    /// while it reads its backlog reports null until the read completes).</summary>
    public DateTimeOffset? HeadMessageTimestamp { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}: ready={Ready} unacked={Unacked} delayed={Delayed} consumers={Consumers} published={Published} delivered={Delivered} acked={Acked} nacked={Nacked} redelivered={Redelivered} dead-lettered={DeadLettered} dropped={Dropped} expired={Expired} rejected={Rejected} duplicates={Duplicates}";
}
