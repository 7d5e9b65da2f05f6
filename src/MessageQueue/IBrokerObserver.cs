using MessageQueue.Queues;

namespace MessageQueue;

/// <summary>
/// Sees what the broker does to messages, for the test harness (<c>MessageQueue.Testing</c>). Null unless a harness
/// set it: the engine pays one null check per event. Called on the broker's threads, some under a queue's lock: an
/// observer records and returns, never calls back into the broker.
/// </summary>
internal interface IBrokerObserver
{
    /// <summary>A publish (or send, or a committed transaction's message) was accepted.</summary>
    void Published(string exchange, string routingKey, object message, string messageId, int routedQueues);

    /// <summary>Code took a delivery (a handler is about to run, or a pull consumer received it).</summary>
    void Delivered(string queue, QueueEntry entry, int deliveryCount);

    /// <summary>A delivery was acknowledged.</summary>
    void Acked(string queue, QueueEntry entry);

    /// <summary>A delivery was nacked with requeue (a retry); a nack without requeue is dead-lettered instead.</summary>
    void Requeued(string queue, QueueEntry entry, TimeSpan delay);

    /// <summary>A message left <paramref name="queue"/> as a dead letter (expired, over a limit, rejected, at its
    /// delivery limit), whether or not the queue has a dead-letter target.</summary>
    void DeadLettered(string queue, QueueEntry entry, string reason, string? detail, Exception? exception);
}
