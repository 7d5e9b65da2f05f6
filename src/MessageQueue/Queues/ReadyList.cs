namespace MessageQueue.Queues;

/// <summary>
/// The ready messages of a queue in order. New messages append to a ring buffer (FIFO); requeued messages
/// go to a small heap ordered by their original sequence, and the head is whichever of the two is older,
/// so a requeued message returns to its place ahead of everything published after it.
/// </summary>
internal sealed class ReadyList
{
    private readonly Queue<QueueEntry> _fifo = new();
    private readonly PriorityQueue<QueueEntry, long> _returned = new();

    internal int Count => _fifo.Count + _returned.Count;

    internal void Append(QueueEntry entry) => _fifo.Enqueue(entry);

    internal void Return(QueueEntry entry) => _returned.Enqueue(entry, entry.Sequence);

    internal bool TryPeek(out QueueEntry entry)
    {
        var hasFifo = _fifo.TryPeek(out var f);
        var hasReturned = _returned.TryPeek(out var r, out _);
        if (hasFifo && (!hasReturned || f!.Sequence < r!.Sequence))
        {
            entry = f!;
            return true;
        }

        entry = r!;
        return hasReturned;
    }

    internal bool TryTake(out QueueEntry entry)
    {
        var hasFifo = _fifo.TryPeek(out var f);
        var hasReturned = _returned.TryPeek(out var r, out _);
        if (hasFifo && (!hasReturned || f!.Sequence < r!.Sequence))
        {
            entry = _fifo.Dequeue();
            return true;
        }

        if (hasReturned)
        {
            entry = _returned.Dequeue();
            return true;
        }

        entry = null!;
        return false;
    }

    /// <summary>The ready entries in delivery order (for browsing; allocates).</summary>
    internal List<QueueEntry> Snapshot(int max)
    {
        var all = new List<QueueEntry>(Math.Min(Count, max));
        all.AddRange(_fifo);
        all.AddRange(_returned.UnorderedItems.Select(i => i.Element));
        all.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        if (all.Count > max)
        {
            all.RemoveRange(max, all.Count - max);
        }

        return all;
    }

    internal List<QueueEntry> Clear()
    {
        var all = Snapshot(int.MaxValue);
        _fifo.Clear();
        _returned.Clear();
        return all;
    }

    /// <summary>Removes up to <paramref name="max"/> entries from the head that satisfy <paramref name="take"/>, keeping the rest in place.</summary>
    internal List<QueueEntry> RemoveWhere(Func<QueueEntry, bool> take, int max)
    {
        var all = Clear();
        var removed = new List<QueueEntry>();
        foreach (var e in all)
        {
            if (removed.Count < max && take(e))
            {
                removed.Add(e);
            }
            else
            {
                _fifo.Enqueue(e);
            }
        }

        return removed;
    }
}
