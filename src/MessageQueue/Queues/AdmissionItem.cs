namespace MessageQueue.Queues;

/// <summary>One message bound for one queue in an admission.</summary>
internal struct AdmissionItem(BrokerQueue queue, QueueEntry entry, long due, string? dedupId, long size, int message)
{
    /// <summary>The message's row when the queue stores it (written before the item takes its place), or null.</summary>
    internal Storage.NewRow? Row;

    /// <summary>When a deduplicated publish was first seen, as written to the store with its row (0: take the time
    /// when it is put in place).</summary>
    internal long SeenAt;

    internal readonly BrokerQueue Queue = queue;
    internal readonly QueueEntry Entry = entry;

    /// <summary>When a delayed message becomes ready (UTC ticks), or 0.</summary>
    internal readonly long Due = due;

    /// <summary>The publisher's message id, checked against deduplication windows; null when generated.</summary>
    internal readonly string? DedupId = dedupId;

    internal readonly long Size = size;

    /// <summary>Which message of the publish (transactions have several).</summary>
    internal readonly int Message = message;

    internal Verdict Verdict;

    /// <summary>For a refused item: the limit the queue reached.</summary>
    internal string? Limit;
}

/// <summary>What admission does with one item.</summary>
internal enum Verdict
{
    Pending,
    Enqueue,
    Duplicate,
    Rejected,
    RejectedDeadLetter,
    QueueDeleted,
}

/// <summary>A queue's answer when planning an admission.</summary>
internal enum Plan
{
    Ok,
    Wait,
    Full,
    Deleted,
}
