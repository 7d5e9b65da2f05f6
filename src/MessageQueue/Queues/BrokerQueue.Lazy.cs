using MessageQueue.Storage;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Queues;

/// <summary>
/// Lazy queues: every message has a row in the store before it is admitted. While the queue's backlog fits the
/// window, admitted messages stay in memory as in any queue; once it is full, newer ones are "spilled": only
/// their ids and sizes stay in memory, in order. When consumers have taken half of the window, the next ids are
/// read back from the store (on the thread pool, outside the lock) and join the tail, behind everything in the
/// window and ahead of everything spilled later, so the queue stays FIFO. Counts and length limits include the
/// spilled messages. A head that must be dropped (<see cref="OverflowPolicy.DropHead"/>) while it is still on
/// disk is owed: the next messages read back are dead-lettered instead of joining.
/// </summary>
internal sealed partial class BrokerQueue
{
    private readonly SpillQueue? _spill;
    private readonly int _window;
    private long[] _loadingIds = [];
    private int[] _loadingSizes = [];
    private long _loadingBytes;
    private int _loadGeneration;
    private int _owedDrops;
    private long _owedBytes;

    internal bool IsLazy => _spill is not null;

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
    private int ReadyCount => _spill is null ? _ready.Count : _ready.Count + _spill.Count + _loadingIds.Length - _owedDrops;

    private long ReadyBytes => _spill is null ? _ready.Bytes : _ready.Bytes + _spill.Bytes + _loadingBytes - _owedBytes;

    /// <summary>Whether a message joining the tail now must stay on disk: the window is full, or older messages
    /// are on disk (caller holds the lock).</summary>
    private bool MustSpill => _spill is not null && (_spill.Count > 0 || _loadingIds.Length > 0 || _ready.Count >= _window);

    /// <summary>Puts a message at the tail, spilling it when <see cref="MustSpill"/> and it has a row (caller holds the lock).</summary>
    private void JoinTailOrSpill(QueueEntry entry, long storeId, long size)
    {
        if (storeId > 0 && MustSpill)
        {
            entry.SetState(EntryState.Gone); // the object is dropped; the row stands for it
            _spill!.Enqueue(storeId, (int)Math.Min(size, int.MaxValue));
            return;
        }

        if (storeId > 0)
        {
            _storeIds![entry] = storeId;
        }

        JoinTail(entry);
    }

    /// <summary>A due delayed message of a lazy queue joins the tail, spilling if older messages are on disk.</summary>
    private void JoinTailFromMemory(QueueEntry entry)
    {
        if (MustSpill && _storeIds!.Remove(entry, out var storeId))
        {
            JoinTailOrSpill(entry, storeId, CountsBytes ? BodySize.Of(entry.Body) : 0);
            return;
        }

        JoinTail(entry);
    }

    /// <summary>A recovered ready row of a lazy queue: it stays on disk until the window reaches it.</summary>
    internal void RecoverSpilled(StoredMessage row)
    {
        lock (_sync)
        {
            _published++;
            _spill!.Enqueue(row.Id, CountsBytes ? row.Length : 0);
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

    /// <summary>Starts reading the next spilled messages when half the window has been taken and no read is under
    /// way (caller holds the lock).</summary>
    private void MaybeRefill()
    {
        var spill = _spill!;
        if (spill.Count == 0 || _loadingIds.Length > 0 || _deleted || _ready.Count > _window / 2)
        {
            return;
        }

        var n = Math.Min(spill.Count, _window - _ready.Count);
        var ids = new long[n];
        var sizes = new int[n];
        for (var i = 0; i < n; i++)
        {
            (ids[i], sizes[i]) = spill.Dequeue();
            _loadingBytes += sizes[i];
        }

        _loadingIds = ids;
        _loadingSizes = sizes;
        var generation = _loadGeneration;

        // Never on this thread: it holds the lock (which is reentrant), and a read that completes at once would
        // put the new messages in place in the middle of the caller's own take.
        _ = Task.Run(() => LoadAsync(ids, generation));
    }

    private async Task LoadAsync(long[] ids, int generation)
    {
        var log = _context.Durable!;
        while (true)
        {
            try
            {
                await log.Barrier().ConfigureAwait(false); // rows queued without a waiting publisher are written first
                var rows = log.Store.Read(ids);
                var decoded = new Envelope.Decoded[rows.Count];
                for (var i = 0; i < rows.Count; i++)
                {
                    decoded[i] = Envelope.Decode(rows[i].Envelope, log.Serializer);
                }

                Loaded(ids, rows, decoded, generation);
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (log.IsClosed || IsDeleted || Volatile.Read(ref _loadGeneration) != generation)
                {
                    return;
                }

                LogLoadFailed(_context.Logger, Name, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false); // the store may recover
            }
        }
    }

    private void Loaded(long[] ids, IReadOnlyList<StoredMessage> rows, Envelope.Decoded[] decoded, int generation)
    {
        List<DeadLetter>? dead;
        var missing = 0;
        lock (_sync)
        {
            if (generation != _loadGeneration)
            {
                return; // purged or deleted meanwhile: the rows are gone
            }

            var sizes = _loadingSizes;
            _loadingIds = [];
            _loadingSizes = [];
            _loadingBytes = 0;
            var r = 0;
            for (var i = 0; i < ids.Length; i++)
            {
                if (r >= rows.Count || rows[r].Id != ids[i])
                {
                    missing++;
                    OweNoMore(sizes[i]);
                    continue;
                }

                var row = rows[r];
                var d = decoded[r++];
                var entry = EntryOf(row, d);
                _storeIds![entry] = row.Id;
                if (_owedDrops > 0)
                {
                    OweNoMore(sizes[i]);
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

            Dispatch();
            MaybeRefill();
            if (_limited)
            {
                RoomFreed();
            }

            dead = TakeDeadLetters();
        }

        if (missing > 0)
        {
            LogRowsMissing(_context.Logger, missing, Name);
        }

        SendDeadLetters(dead);
    }

    /// <summary>A spilled message the head-drop owed has been dealt with (caller holds the lock).</summary>
    private void OweNoMore(int size)
    {
        if (_owedDrops > 0)
        {
            _owedDrops--;
            _owedBytes -= size;
        }
    }

    /// <summary>Drops the oldest ready message when it is still on disk: owed, dead-lettered when read back
    /// (caller holds the lock). False when there is nothing more to drop.</summary>
    private bool OweDrop()
    {
        var spill = _spill;
        var loading = _loadingIds.Length;
        if (spill is null || _owedDrops >= loading + spill.Count)
        {
            return false;
        }

        _owedBytes += _owedDrops < loading ? _loadingSizes[_owedDrops] : spill.SizeAt(_owedDrops - loading);
        _owedDrops++;
        MaybeRefill();
        return true;
    }

    /// <summary>Empties the spilled part (purge, delete): rows deleted, a read under way discarded (caller holds
    /// the lock). Returns how many messages it held.</summary>
    private int ClearSpilled()
    {
        if (_spill is null)
        {
            return 0;
        }

        var count = ReadyCount - _ready.Count;
        var ids = _spill.Clear();
        ids.AddRange(_loadingIds);
        foreach (var id in ids)
        {
            _context.Durable!.Delete(id);
        }

        _loadGeneration++;
        _loadingIds = [];
        _loadingSizes = [];
        _loadingBytes = 0;
        _owedDrops = 0;
        _owedBytes = 0;
        return count;
    }

    /// <summary>The first spilled ids, for browsing (caller holds the lock).</summary>
    private List<long> PeekSpilled(int max)
    {
        var ids = new List<long>();
        if (_spill is null || max <= 0)
        {
            return ids;
        }

        var skip = _owedDrops;
        foreach (var id in _loadingIds.Concat(_spill.PeekIds(max + skip)))
        {
            if (skip > 0)
            {
                skip--;
            }
            else if (ids.Count < max)
            {
                ids.Add(id);
            }
        }

        return ids;
    }

    /// <summary>Reads spilled messages for browsing (no lock held).</summary>
    private List<QueueEntry> ReadSpilled(List<long> ids)
    {
        if (ids.Count == 0)
        {
            return [];
        }

        var log = _context.Durable!;
        return [.. log.Store.Read(ids).Select(row => EntryOf(row, Envelope.Decode(row.Envelope, log.Serializer)))];
    }

    private static QueueEntry EntryOf(StoredMessage row, Envelope.Decoded decoded) =>
        new(decoded.Body, decoded.Properties, decoded.Exchange, decoded.RoutingKey, decoded.TimestampTicks, decoded.Properties.Priority)
        {
            DeliveryCount = row.DeliveryCount,
        };

    [LoggerMessage(EventId = 24, Level = LogLevel.Error, Message = "Reading the next messages of lazy queue '{Queue}' from the store failed; retrying")]
    private static partial void LogLoadFailed(ILogger logger, string queue, Exception exception);

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "{Count} messages of lazy queue '{Queue}' were no longer in the store when read back")]
    private static partial void LogRowsMissing(ILogger logger, int count, string queue);
}
