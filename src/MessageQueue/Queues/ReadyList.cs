namespace MessageQueue.Queues;

/// <summary>
/// The ready messages of a queue in delivery order: one level per priority (a single level for a queue
/// without <c>MaxPriority</c>), highest level first. Within a level, new messages append to a ring buffer
/// (FIFO); requeued messages go to a small heap ordered by their original sequence, and the level's head is
/// whichever of the two is older, so a requeued message returns to its place in its level. An entry can be
/// removed from anywhere in O(1) (<see cref="Remove"/>: TTL expiry from the index): it is only uncounted, and its
/// node is skipped when it reaches the head, because its state is no longer <see cref="EntryState.Ready"/>; every
/// entry in the list is <see cref="EntryState.Ready"/> otherwise.
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

    /// <summary>How many entries whole-list operations have looked at (for tests that no hot path scans the list).</summary>
    internal long Visited { get; private set; }

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

    /// <summary>Removes an entry from wherever it is (caller holds the queue lock and moves the entry out of
    /// <see cref="EntryState.Ready"/> at once, so that its node is skipped).</summary>
    internal void Remove(QueueEntry entry)
    {
        Count--;
        if (_countBytes)
        {
            Bytes -= BodySize.Of(entry.Body);
        }
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

    /// <summary>The entry <see cref="TryTake"/> would take next, left in place.</summary>
    internal bool TryPeek(out QueueEntry entry)
    {
        for (var level = _top; level >= 0; level--)
        {
            if (_levels[level].TryPeek(out entry))
            {
                return true;
            }
        }

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
            Visited += items.Count;
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

    /// <summary>Calls <paramref name="action"/> for every entry, in no particular order.</summary>
    internal void ForEach(Action<QueueEntry> action)
    {
        foreach (var level in _levels)
        {
            var items = level.Items();
            Visited += items.Count;
            foreach (var e in items)
            {
                action(e);
            }
        }
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
            while (true)
            {
                var hasFifo = Fifo.TryPeek(out var f);
                var hasReturned = Returned.TryPeek(out var r, out _);
                if (hasFifo && (!hasReturned || f!.Sequence < r!.Sequence))
                {
                    entry = Fifo.Dequeue();
                }
                else if (hasReturned)
                {
                    entry = Returned.Dequeue();
                }
                else
                {
                    entry = null!;
                    return false;
                }

                if (entry.State == EntryState.Ready)
                {
                    return true; // otherwise it was removed where it stood: skip its node
                }
            }
        }

        /// <summary>The entry <see cref="TryTake"/> would take, left in place (nodes of removed entries are dropped).</summary>
        internal bool TryPeek(out QueueEntry entry)
        {
            while (true)
            {
                var hasFifo = Fifo.TryPeek(out var f);
                var hasReturned = Returned.TryPeek(out var r, out _);
                if (hasFifo && (!hasReturned || f!.Sequence < r!.Sequence))
                {
                    if (f!.State == EntryState.Ready)
                    {
                        entry = f;
                        return true;
                    }

                    Fifo.Dequeue();
                }
                else if (hasReturned)
                {
                    if (r!.State == EntryState.Ready)
                    {
                        entry = r;
                        return true;
                    }

                    Returned.Dequeue();
                }
                else
                {
                    entry = null!;
                    return false;
                }
            }
        }

        /// <summary>The entries still in the list (removed ones skipped), in no particular order.</summary>
        internal List<QueueEntry> Items()
        {
            var items = new List<QueueEntry>(Fifo.Count + Returned.Count);
            foreach (var e in Fifo)
            {
                if (e.State == EntryState.Ready)
                {
                    items.Add(e);
                }
            }

            foreach (var (e, _) in Returned.UnorderedItems)
            {
                if (e.State == EntryState.Ready)
                {
                    items.Add(e);
                }
            }

            return items;
        }
    }
}
