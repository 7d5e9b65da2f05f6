namespace MessageQueue.Queues;

/// <summary>The management side of a queue: counts, purge, browse, redrive, delete.</summary>
internal sealed partial class BrokerQueue
{
    private int _warnedMissingTarget;

    /// <summary>Logs, once per queue, that its dead letters are dropped because their target does not exist (yet).</summary>
    internal void WarnDeadLetterTargetMissing(string target)
    {
        if (Interlocked.Exchange(ref _warnedMissingTarget, 1) == 0)
        {
            LogDeadLetterTargetMissing(_context.Logger, Name, target);
        }
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 27, EventName = "DeadLetterTargetMissing", Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Queue '{Queue}' names {Target}, which does not exist; its dead letters are dropped (counted in QueueInfo.Dropped) until it is declared")]
    private static partial void LogDeadLetterTargetMissing(Microsoft.Extensions.Logging.ILogger logger, string queue, string target);

    internal QueueInfo GetInfo()
    {
        lock (_sync)
        {
            DrainIncoming();
            var unacked = 0;
            var active = 0;
            foreach (var c in _consumers)
            {
                unacked += c.InFlight;
                active += c.Active ? 1 : 0;
            }

            return new QueueInfo
            {
                Name = Name,
                Ready = ReadyCount,
                Unacked = unacked,
                Delayed = _delayed.Count + (_blockedDue?.Count ?? 0) + (_delayedRows?.Count ?? 0) + (_blockedDueRows?.Count ?? 0) + _becomingDue,
                Consumers = active,
                Published = _counters.Published,
                Delivered = _counters.Delivered,
                Acked = _counters.Acked,
                Nacked = _counters.Nacked,
                Redelivered = _counters.Redelivered,
                DeadLettered = Interlocked.Read(ref _counters.DeadLettered),
                Dropped = Interlocked.Read(ref _counters.Dropped),
                Expired = _counters.Expired,
                Rejected = _counters.Rejected,
                Duplicates = _counters.Duplicates,
                HeadMessageTimestamp = _ready.TryPeek(out var head) ? new DateTimeOffset(head.TimestampTicks, TimeSpan.Zero) : null,
            };
        }
    }

    /// <summary>Removes every ready message (as RabbitMQ's purge: unacked and delayed ones stay).</summary>
    internal int Purge()
    {
        List<QueueEntry> removed;
        int spilled;
        lock (_sync)
        {
            DrainIncoming();
            removed = _ready.Clear();
            _expiries.Clear();
            foreach (var e in removed)
            {
                e.SetState(EntryState.Gone);
                ForgetStored(e);
            }

            spilled = ClearSpilled();
            if (_limits.IsLimited)
            {
                RoomFreed();
            }
        }

        Notify();
        return removed.Count + spilled;
    }

    /// <summary>The first ready messages in order, left in place (a lazy queue's beyond its window are read from the store).</summary>
    internal List<QueueEntry> Peek(int max)
    {
        List<QueueEntry> seen;
        (long After, long UpTo, int Owed) disk;
        lock (_sync)
        {
            DrainIncoming();
            seen = _ready.Snapshot(max);
            disk = _lazy && !_disk.IsEmpty ? DiskRange : (0, 0, 0);
        }

        seen.AddRange(ReadSpilled(disk.After, disk.UpTo, disk.Owed, max - seen.Count));
        return seen;
    }

    /// <summary>The disk part's id range and how many of its head rows are owed to the head-drop, for browsing and
    /// redrive (caller holds the lock).</summary>
    private (long After, long UpTo, int Owed) DiskRange => (_disk.Cursor, _disk.MaxId, _disk.OwedDrops);

    /// <summary>Reads rows of the disk part for browsing (no lock held).</summary>
    private List<QueueEntry> ReadSpilled(long after, long upTo, int skip, int max)
    {
        if (max <= 0 || upTo <= after)
        {
            return [];
        }

        var log = _context.Durable!;
        var seen = new List<QueueEntry>();
        foreach (var row in log.Store.ReadReady(Name, after, upTo, max + skip).Skip(skip))
        {
            if (TryDecode(row) is { } d)
            {
                seen.Add(EntryOf(row, d));
            }
        }

        return seen;
    }

    /// <summary>Takes up to <paramref name="max"/> ready messages in memory that <paramref name="take"/> accepts, in
    /// order, to move them elsewhere: they keep their rows (the mover deletes them with the move) and can be put back
    /// (<see cref="PutBack"/>).</summary>
    internal List<QueueEntry> TakeForMove(Func<QueueEntry, bool> take, int max)
    {
        List<QueueEntry> taken;
        lock (_sync)
        {
            DrainIncoming();
            taken = _ready.RemoveWhere(take, max);
            foreach (var e in taken)
            {
                e.SetState(EntryState.Gone);
            }

            if (_limits.IsLimited && taken.Count > 0)
            {
                RoomFreed();
            }
        }

        Notify();
        return taken;
    }

    /// <summary>Puts a message taken for a move back at its place (its move was refused or failed).</summary>
    internal void PutBack(QueueEntry entry)
    {
        using (Lock())
        {
            if (_deleted)
            {
                ForgetStored(entry);
                return;
            }

            entry.SetState(EntryState.Ready);
            _ready.Return(entry);
            IndexExpiry(entry);
            Dispatch();
        }
    }

    /// <summary>Pauses reading a lazy queue's disk part (a redrive reads it itself); returns the read under way, to
    /// be awaited before the disk part is touched.</summary>
    internal Task PauseLoads()
    {
        lock (_sync)
        {
            _loadsPaused++;
            return _loader;
        }
    }

    internal void ResumeLoads()
    {
        using (Lock())
        {
            _loadsPaused--;
            MaybeRefill();
            Dispatch();
        }
    }

    /// <summary>The disk part's id range, for a redrive that reads it while loads are paused; null when it is empty.</summary>
    internal (long After, long UpTo, int Generation)? DiskPart
    {
        get
        {
            lock (_sync)
            {
                return _lazy && !_disk.IsEmpty ? (_disk.Cursor, _disk.MaxId, _loadGeneration) : null;
            }
        }
    }

    /// <summary>Reads the next rows of the disk part, as entries with their row ids (loads paused; no lock held).</summary>
    internal List<(QueueEntry Entry, int Size, long Id)> ReadDisk(long after, long upTo, int max)
    {
        var log = _context.Durable!;
        var entries = new List<(QueueEntry, int, long)>();
        foreach (var row in log.Store.ReadReady(Name, after, upTo, max))
        {
            if (TryDecode(row) is { } d)
            {
                var entry = EntryOf(row, d);
                entry.StoreId = row.Id;
                entries.Add((entry, row.Length, row.Id));
            }
        }

        return entries;
    }

    /// <summary>A row of the disk part is taken to move elsewhere (or comes back when its move was refused or failed,
    /// <paramref name="taken"/> false): the disk part's count follows (loads paused). False when the disk part was
    /// purged or the queue deleted since <paramref name="generation"/>: the row is no longer the queue's to move.</summary>
    internal bool TakeFromDisk(int size, bool taken, int generation)
    {
        lock (_sync)
        {
            if (generation != _loadGeneration || _deleted || (taken && _disk.IsEmpty))
            {
                return false;
            }

            _disk.Move(size, taken);
            if (_limits.IsLimited && taken)
            {
                RoomFreed();
            }
        }

        Notify();
        return true;
    }

    /// <summary>Deletes the queue: its messages are dropped and its consumers' channels completed.</summary>
    internal int Delete()
    {
        lock (_sync)
        {
            if (_deleted)
            {
                return 0;
            }

            // The flag first, then the drain: a lock-free publish that enqueued before it is drained and deleted here;
            // one that enqueues after it sees the flag and reports the message as not enqueued (see Enqueue).
            Volatile.Write(ref _deleted, true);
            Interlocked.MemoryBarrier();
            while (_incoming.TryDequeue(out _))
            {
                _counters.Published++;
            }

            var count = ReadyCount + _delayed.Count + (_blockedDue?.Count ?? 0) + (_delayedRows?.Count ?? 0) + (_blockedDueRows?.Count ?? 0);
            ClearSpilled();
            _waiting = 0;
            DropEntries();
            if (_stored)
            {
                DropRowsOfDeletedQueue();
            }

            _delayedRows?.Clear();
            EndWaitersOfDeletedQueue();
            return count;
        }
    }

    /// <summary>Drops the ready, delayed and blocked entries of a deleted queue, with their rows (caller holds the lock).</summary>
    private void DropEntries()
    {
        foreach (var e in _ready.Clear())
        {
            ForgetStored(e);
        }

        _expiries.Clear();
        foreach (var e in _delayed.Clear())
        {
            ForgetStored(e);
        }
        while (_blockedDue?.TryDequeue(out var e) == true)
        {
            ForgetStored(e);
        }
    }

    /// <summary>Deletes the rows of a deleted queue that have no entry in memory (a lazy queue's delayed and blocked rows)
    /// and those of its unacked deliveries (caller holds the lock).</summary>
    private void DropRowsOfDeletedQueue()
    {
        if (_delayedRows is { } delayedRows)
        {
            foreach (var (row, _) in delayedRows.UnorderedItems)
            {
                _context.Durable!.Delete(row.Id);
            }
        }

        while (_blockedDueRows?.TryDequeue(out var row) == true)
        {
            _context.Durable!.Delete(row.Id);
        }

        foreach (var c in _consumers)
        {
            foreach (var t in c.Unacked)
            {
                if (t.IsLive)
                {
                    ForgetStored(t.Entry);
                }
            }
        }
    }

    /// <summary>Fails the publishers waiting for room and completes the consumers' channels with a
    /// <see cref="TopologyException"/> (caller holds the lock).</summary>
    private void EndWaitersOfDeletedQueue()
    {
        _limits.FailWaiters(new TopologyException($"Queue '{Name}' was deleted while a publisher waited for room in it; the message was not enqueued."), forever: false);
        foreach (var c in _consumers)
        {
            c.Active = false;
            c.Removed = true;
            c.Channel.Writer.TryComplete(new TopologyException($"Queue '{Name}' was deleted while this consumer was reading it."));
        }

        _consumers.Clear();
    }
}
