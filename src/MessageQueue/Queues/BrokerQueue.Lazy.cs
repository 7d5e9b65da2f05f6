using MessageQueue.Scheduling;
using MessageQueue.Storage;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Queues;

/// <summary>
/// Lazy queues: every message has a row in the store before it joins. While the queue's backlog fits the window,
/// messages stay in memory as in any queue; once it is full, newer ones stay on disk only, and memory keeps no trace
/// of them but a count, their total size and an id range: the disk part is every ready row of the queue (due time 0)
/// with an id in (<c>Cursor</c>, <c>MaxId</c>] of its <see cref="DiskBacklog"/>. That works because messages join a lazy queue's tail in id
/// order (rows get their ids when their unit is submitted and join when it is written, in that order; a delayed
/// message that falls due is renumbered to the tail). When consumers have taken half of the window, the next rows
/// are read back (one load at a time, outside the lock) and join the tail, so the queue stays FIFO. A head that
/// must be dropped (<see cref="OverflowPolicy.DropHead"/>) while it is still on disk is owed: the next rows read
/// back are dead-lettered instead of joining. Delayed messages keep only their id, size and due time in memory.
/// </summary>
internal sealed partial class BrokerQueue
{
    private readonly bool _lazy;
    private readonly int _window;
    private readonly DiskBacklog _disk = new(0); // empty unless lazy
    private bool _loading;
    private int _loadGeneration;
    private int _loadsPaused;
    private Task _loader = Task.CompletedTask;
    private PriorityQueue<(long Id, int Size), (long Due, long Id)>? _delayedRows; // equal due times in row order
    private Queue<(long Id, int Size)>? _blockedDueRows;

    internal bool IsLazy => _lazy;

    /// <summary>How many ready messages are in memory (for tests of the window).</summary>
    internal int InMemoryReady
    {
        get
        {
            lock (_sync)
            {
                return _ready.Count;
            }
        }
    }

    /// <summary>Ready messages, counting those on disk only (caller holds the lock).</summary>
    private int ReadyCount => _lazy ? _ready.Count + _disk.ReadyCount : _ready.Count;

    /// <summary>Ready bytes: in memory as measured, on disk by their stored size (caller holds the lock).</summary>
    private long ReadyBytes => _lazy ? _ready.Bytes + _disk.ReadyBytes : _ready.Bytes;

    /// <summary>Whether a message joining the tail now must stay on disk: the window is full, or older messages
    /// are on disk or being read (caller holds the lock).</summary>
    private bool MustSpill => _lazy && (!_disk.IsEmpty || _loading || _ready.Count >= _window);

    /// <summary>Puts a message at the tail, leaving it on disk when <see cref="MustSpill"/> and it has a row (caller
    /// holds the lock). A lazy queue's row id is above every other id in the queue (see the type's remarks).</summary>
    private void JoinTailOrSpill(QueueEntry entry, long storeId, long size)
    {
        if (_lazy && storeId > 0 && MustSpill)
        {
            entry.SetState(EntryState.Gone); // the object is dropped; the row stands for it
            _disk.Spill(storeId, size);
            return;
        }

        entry.StoreId = storeId;
        if (_lazy)
        {
            _disk.PassedInMemory(storeId); // nothing is on disk: every row up to this one is in memory or gone
        }

        JoinTail(entry);
    }

    /// <summary>Whether a message without a row can join this queue now (caller holds the lock): a lazy queue takes it
    /// in memory only while nothing is on disk, or it would overtake older messages there.</summary>
    private bool CanJoinWithoutRow => !MustSpill;

    /// <summary>Before a lazy queue takes the rows an earlier run stored for it: they all belong to it, so its disk
    /// part starts below them.</summary>
    internal void PrepareRecovery()
    {
        lock (_sync)
        {
            _disk.StartBelowEverything();
        }
    }

    /// <summary>A recovered ready row of a lazy queue: it stays on disk until the window reaches it (recovery reads
    /// in id order, before anything else can join).</summary>
    internal void RecoverSpilled(StoredMessage row)
    {
        lock (_sync)
        {
            _counters.Published++;
            _disk.Spill(row.Id, row.Length);
        }
    }

    /// <summary>A recovered delayed row of a lazy queue: only its id, size and due time stay in memory.</summary>
    internal void RecoverDelayedRow(StoredMessage row)
    {
        lock (_sync)
        {
            _counters.Published++;
            AddDelayedRow(row.Id, row.Length, row.DueTicks);
        }
    }

    /// <summary>Starts filling the window once recovery has put everything in place.</summary>
    internal void AfterRecovery()
    {
        lock (_sync)
        {
            MaybeRefill();
        }
    }

    private void AddDelayedRow(long id, int size, long dueTicks)
    {
        (_delayedRows ??= new()).Enqueue((id, size), (dueTicks, id));
        WakeAt(dueTicks);
    }

    /// <summary>Starts reading the next rows from disk when half the window has been taken and no read is under
    /// way (caller holds the lock).</summary>
    private void MaybeRefill()
    {
        if (!_lazy || _disk.IsEmpty || _loading || _deleted || _loadsPaused > 0 || _ready.Count > _window / 2)
        {
            return;
        }

        var n = Math.Max(1, Math.Min(_disk.Count, _window - _ready.Count));
        _loading = true;
        var load = new Load(_disk.Cursor, _disk.MaxId, n, _disk.Count, _loadGeneration);

        // Never on this thread: it holds the lock (which is reentrant), and a read that completes at once would put
        // the new messages in place in the middle of the caller's own take.
        _loader = Task.Run(() => LoadAsync(load));
    }

    /// <summary>One read of the disk part: up to <paramref name="Count"/> rows in (<paramref name="After"/>,
    /// <paramref name="UpTo"/>], which then held <paramref name="Held"/> rows.</summary>
    private readonly record struct Load(long After, long UpTo, int Count, int Held, int Generation);

    /// <summary>Completes when no read of the disk part is under way (loads are paused or none is needed).</summary>
    internal Task LoaderTask
    {
        get
        {
            lock (_sync)
            {
                return _loader;
            }
        }
    }

    private async Task LoadAsync(Load load)
    {
        var (after, upTo, count, _, generation) = load;
        var log = _context.Durable!;
        var wait = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                var rows = log.Store.ReadReady(Name, after, upTo, count);
                var decoded = new Envelope.Decoded?[rows.Count];
                for (var i = 0; i < rows.Count; i++)
                {
                    decoded[i] = TryDecode(rows[i]);
                }

                Loaded(rows, decoded, load);
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (log.IsClosed || IsDeleted || Volatile.Read(ref _loadGeneration) != generation)
                {
                    lock (_sync)
                    {
                        if (_loadGeneration == generation)
                        {
                            _loading = false;
                        }
                    }

                    return;
                }

                LogLoadFailed(_context.Logger, Name, ex);
                try
                {
                    await Durations.DelayAsync(wait, _context.Time, _context.Stopping).ConfigureAwait(false); // the store may recover
                }
                catch (OperationCanceledException)
                {
                    return; // the broker is stopping
                }

                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    /// <summary>Decodes a row read back; a row too damaged to decode is dropped (logged), not retried forever.</summary>
    private Envelope.Decoded? TryDecode(StoredMessage row)
    {
        var log = _context.Durable!;
        try
        {
            return Envelope.Decode(row, log.Store, log.Serializer);
        }
        catch (MessageStoreException ex)
        {
            LogRowDamaged(_context.Logger, row.Id, Name, ex);
            return null;
        }
    }

    private void Loaded(IReadOnlyList<StoredMessage> rows, Envelope.Decoded?[] decoded, Load load)
    {
        List<DeadLetter>? dead;
        var lost = 0;
        lock (_sync)
        {
            if (load.Generation != _loadGeneration)
            {
                return; // purged or deleted meanwhile: the rows are gone
            }

            _loading = false;
            for (var i = 0; i < rows.Count; i++)
            {
                TakeLoaded(rows[i], decoded[i]);
            }

            if (rows.Count < load.Count)
            {
                lost = _disk.ForgetMissing(load.Held, rows.Count, load.UpTo); // the rest were deleted behind the queue's back
            }

            Dispatch();
            MaybeRefill();
            if (_limits.IsLimited)
            {
                DropHeadToLimits();
                RoomFreed();
            }

            dead = TakeDeadLetters();
        }

        if (lost > 0)
        {
            LogRowsMissing(_context.Logger, lost, Name);
        }

        SendDeadLetters(dead);
    }

    /// <summary>A loaded row leaves the disk backlog: it joins the tail, or is dead-lettered (a head-drop owed it, or
    /// its type cannot be read), or dropped when it is damaged (caller holds the lock).</summary>
    private void TakeLoaded(StoredMessage row, Envelope.Decoded? decoded)
    {
        _disk.Read(row.Id, row.Length);
        if (decoded is not { } d)
        {
            Interlocked.Increment(ref _counters.Dropped);
            _context.Durable!.Delete(row.Id);
            if (_disk.OwedDrops > 0)
            {
                _disk.OweNoMore(row.Length);
            }

            return;
        }

        var entry = EntryOf(row, d);
        entry.StoreId = row.Id;
        if (_disk.OwedDrops > 0)
        {
            _disk.OweNoMore(row.Length);
            Kill(entry, DeathRecord.MaxLength, detail: null, exception: null);
        }
        else if (d.Failure is { } failure)
        {
            Kill(entry, DeathRecord.Rejected, failure, exception: null);
        }
        else
        {
            JoinTail(entry);
        }
    }

    /// <summary>Drops the oldest ready message when it is still on disk: owed, dead-lettered when read back (caller
    /// holds the lock). Its size is not known until then: the average size on disk stands for it. False when there is
    /// nothing more to drop.</summary>
    private bool OweDrop()
    {
        if (!_lazy || !_disk.TryOweDrop())
        {
            return false;
        }

        MaybeRefill();
        return true;
    }

    /// <summary>Empties the disk part (purge, delete): its rows are deleted by id range, a read under way is discarded
    /// (caller holds the lock). Returns how many messages it held.</summary>
    private int ClearSpilled()
    {
        if (!_lazy)
        {
            return 0;
        }

        var hadRows = !_disk.IsEmpty;
        var count = _disk.Clear(out var after, out var upTo);
        if (hadRows)
        {
            _context.Durable!.Purge(Name, after, upTo);
        }

        _loadGeneration++;
        _loading = false;
        return count;
    }

    private static ExtendedEntry EntryOf(StoredMessage row, Envelope.Decoded decoded) =>
        new(decoded.Body, decoded.Properties, decoded.Exchange, decoded.RoutingKey, decoded.TimestampTicks, decoded.Properties.Priority)
        {
            DeliveryCount = row.DeliveryCount,
        };

    [LoggerMessage(EventId = 24, EventName = "LazyReadFailed", Level = LogLevel.Error, Message = "Reading the next messages of lazy queue '{Queue}' from the store failed; retrying")]
    private static partial void LogLoadFailed(ILogger logger, string queue, Exception exception);

    [LoggerMessage(EventId = 25, EventName = "LazyRowsMissing", Level = LogLevel.Warning, Message = "{Count} messages of lazy queue '{Queue}' were no longer in the store when read back")]
    private static partial void LogRowsMissing(ILogger logger, int count, string queue);

    [LoggerMessage(EventId = 29, EventName = "LazyRowDamaged", Level = LogLevel.Error, Message = "The stored message {Id} of lazy queue '{Queue}' is too damaged to read; it was dropped")]
    private static partial void LogRowDamaged(ILogger logger, long id, string queue, Exception exception);
}
