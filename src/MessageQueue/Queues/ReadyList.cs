namespace MessageQueue.Queues;

/// <summary>
/// The ready messages of a queue in delivery order: one level per priority (a single level for a queue
/// without <c>MaxPriority</c>), highest level first. Within a level, new messages append to a ring buffer
/// (FIFO); requeued messages go to a small heap ordered by their original sequence, and the level's head is
/// whichever of the two is older, so a requeued message returns to its place in its level.
/// </summary>
internal sealed class ReadyList
{
    private readonly Level[] _levels;
    private readonly bool _countBytes;
    private int _top = -1; // highest level that may be non-empty

    internal ReadyList(int maxPriority = 0, bool countBytes = false)
    {
        _countBytes = countBytes;
        _levels = new Level[maxPriority + 1];
        for (var i = 0; i < _levels.Length; i++)
        {
            _levels[i] = new Level();
        }
    }

    internal int Count { get; private set; }

    /// <summary>The body bytes of the ready entries (only counted when asked for at construction).</summary>
    internal long Bytes { get; private set; }

    internal void Append(QueueEntry entry)
    {
        var level = LevelOf(entry);
        _levels[level].Fifo.Enqueue(entry);
        Added(level, entry);
    }

    internal void Return(QueueEntry entry)
    {
        var level = LevelOf(entry);
        _levels[level].Returned.Enqueue(entry, entry.Sequence);
        Added(level, entry);
    }

    internal bool TryTake(out QueueEntry entry)
    {
        for (var level = _top; level >= 0; level--)
        {
            if (_levels[level].TryTake(out entry))
            {
                Count--;
                if (_countBytes)
                {
                    Bytes -= BodySize.Of(entry.Body);
                }

                _top = level;
                return true;
            }
        }

        _top = -1;
        entry = null!;
        return false;
    }

    /// <summary>The ready entries in delivery order (for browsing; allocates).</summary>
    internal List<QueueEntry> Snapshot(int max)
    {
        var all = new List<QueueEntry>(Math.Min(Count, max));
        for (var level = _levels.Length - 1; level >= 0 && all.Count < max; level--)
        {
            var items = _levels[level].Items();
            items.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
            all.AddRange(items.Take(max - all.Count));
        }

        return all;
    }

    internal List<QueueEntry> Clear()
    {
        var all = Snapshot(int.MaxValue);
        foreach (var level in _levels)
        {
            level.Fifo.Clear();
            level.Returned.Clear();
        }

        Count = 0;
        Bytes = 0;
        _top = -1;
        return all;
    }

    /// <summary>Removes up to <paramref name="max"/> entries, in delivery order, that satisfy <paramref name="take"/>,
    /// keeping the rest in place.</summary>
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
                Append(e); // same level, and `all` is in sequence order within each level
            }
        }

        return removed;
    }

    /// <summary>The smallest value of <paramref name="selector"/> over all entries, or <see cref="long.MaxValue"/>.</summary>
    internal long Min(Func<QueueEntry, long> selector)
    {
        var min = long.MaxValue;
        foreach (var level in _levels)
        {
            foreach (var e in level.Fifo)
            {
                min = Math.Min(min, selector(e));
            }

            foreach (var (e, _) in level.Returned.UnorderedItems)
            {
                min = Math.Min(min, selector(e));
            }
        }

        return min;
    }

    private int LevelOf(QueueEntry entry) => Math.Min((int)entry.Priority, _levels.Length - 1);

    private void Added(int level, QueueEntry entry)
    {
        Count++;
        if (_countBytes)
        {
            Bytes += BodySize.Of(entry.Body);
        }

        if (level > _top)
        {
            _top = level;
        }
    }

    private sealed class Level
    {
        internal readonly Queue<QueueEntry> Fifo = new();
        internal readonly PriorityQueue<QueueEntry, long> Returned = new();

        internal bool TryTake(out QueueEntry entry)
        {
            var hasFifo = Fifo.TryPeek(out var f);
            var hasReturned = Returned.TryPeek(out var r, out _);
            if (hasFifo && (!hasReturned || f!.Sequence < r!.Sequence))
            {
                entry = Fifo.Dequeue();
                return true;
            }

            if (hasReturned)
            {
                entry = Returned.Dequeue();
                return true;
            }

            entry = null!;
            return false;
        }

        internal List<QueueEntry> Items()
        {
            var items = new List<QueueEntry>(Fifo.Count + Returned.Count);
            items.AddRange(Fifo);
            items.AddRange(Returned.UnorderedItems.Select(i => i.Element));
            return items;
        }
    }
}
