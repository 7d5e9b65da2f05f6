namespace MessageQueue.Queues;

/// <summary>
/// A queue's lifetime counters, as <see cref="QueueInfo"/> reports them. Part of the queue's state: each is written
/// under the queue's lock, except <see cref="DeadLettered"/> and <see cref="Dropped"/>, which are also counted where the
/// lock is not held (a dead letter leaving after it is released, a damaged row found by the lazy loader) and so are
/// always changed with <see cref="Interlocked"/> and read with <see cref="Interlocked.Read(ref readonly long)"/>.
/// </summary>
internal struct QueueCounters
{
    internal long Published;
    internal long Delivered;
    internal long Acked;
    internal long Nacked;
    internal long Redelivered;
    internal long DeadLettered;
    internal long Dropped;
    internal long Expired;
    internal long Rejected;
    internal long Duplicates;
}
