namespace MessageQueue.Queues;

/// <summary>
/// A queue's delayed entries (delayed publishes and delayed redeliveries) by due time; equal due times in the order
/// they were added. Owns the heap and its order counter. Not thread-safe: used under the owning queue's lock.
/// </summary>
internal sealed class DelayedSet
{
    private readonly PriorityQueue<QueueEntry, (long Due, long Order)> _heap = new();
    private long _order;

    internal int Count => _heap.Count;

    internal void Add(QueueEntry entry, long dueTicks) => _heap.Enqueue(entry, (dueTicks, ++_order));

    /// <summary>When the earliest entry is due, or <see cref="long.MaxValue"/> when there is none.</summary>
    internal long NextDue => _heap.TryPeek(out _, out var due) ? due.Due : long.MaxValue;

    /// <summary>Takes the earliest entry if it is due by <paramref name="nowTicks"/>.</summary>
    internal bool TryTakeDue(long nowTicks, out QueueEntry entry)
    {
        if (_heap.TryPeek(out entry!, out var due) && due.Due <= nowTicks)
        {
            _heap.Dequeue();
            return true;
        }

        entry = null!;
        return false;
    }

    /// <summary>Removes every entry and returns them, in no order.</summary>
    internal List<QueueEntry> Clear()
    {
        var entries = new List<QueueEntry>(_heap.Count);
        foreach (var (entry, _) in _heap.UnorderedItems)
        {
            entries.Add(entry);
        }

        _heap.Clear();
        return entries;
    }
}
