using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>The queue's side of its <see cref="DeduplicationWindow"/>.</summary>
internal sealed partial class BrokerQueue
{
    private readonly DeduplicationWindow? _dedup;

    /// <summary>How many ids the deduplication window holds (for tests of its bound).</summary>
    internal int RememberedIds
    {
        get
        {
            lock (_sync)
            {
                return _dedup?.Count ?? 0;
            }
        }
    }

    /// <summary>Whether the deduplication window is kept in the store, to survive a restart (a durable queue).</summary>
    internal bool RemembersDurably => _stored && Options.Durable;

    /// <summary>Takes back the ids an earlier run remembered (oldest first); those whose window has passed, or
    /// all when the queue no longer deduplicates durably, are forgotten in the store too.</summary>
    internal void RestoreRememberedIds(IEnumerable<RememberedId> ids)
    {
        lock (_sync)
        {
            DeduplicationWindow.Restore(_dedup, ids, _context.Clock.UtcNowTicks(), _context.Durable!);
        }
    }
}
