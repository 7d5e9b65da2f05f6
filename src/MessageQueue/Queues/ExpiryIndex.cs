namespace MessageQueue.Queues;

/// <summary>
/// A queue's expiry index: ready entries that may expire, by expiry time, and when the next sweep is due. A sweep
/// pops the index instead of scanning the ready list; records of entries that left meanwhile are skipped when popped,
/// and the index is rebuilt from the list when they outnumber the live ones, so it stays proportional to the list.
/// Sweeps are at least <see cref="MinInterval"/> apart.
/// </summary>
/// <remarks>Owns its heap and sweep times. Used under the owning queue's lock; <see cref="SweepAt"/> is also read
/// without it (a publisher deciding whether an earlier sweep must be asked for), so it is written with a fence.</remarks>
internal sealed class ExpiryIndex(TimeSpan minInterval)
{
    private PriorityQueue<QueueEntry, long>? _heap;
    private long _sweepAt = long.MaxValue;
    private long _lastSweep;

    internal TimeSpan MinInterval { get; } = minInterval;

    /// <summary>When the next sweep is due, or <see cref="long.MaxValue"/> when none is asked for.</summary>
    internal long SweepAt => Volatile.Read(ref _sweepAt);

    internal int Count => _heap?.Count ?? 0;

    /// <summary>Indexes an entry by its expiry.</summary>
    internal void Add(QueueEntry entry, long expiry) => (_heap ??= new PriorityQueue<QueueEntry, long>()).Enqueue(entry, expiry);

    /// <summary>Whether the index holds over twice as many records as <paramref name="readyCount"/> (plus a margin):
    /// mostly records of entries that left, so the caller rebuilds it from the ready list.</summary>
    internal bool NeedsRebuild(int readyCount) => Count > (2L * readyCount) + 1024;

    internal void Clear() => _heap?.Clear();

    /// <summary>Takes the earliest record if it expires by <paramref name="now"/> (the entry may have left the list).</summary>
    internal bool TryTakeExpired(long now, out QueueEntry entry)
    {
        if (_heap is { } heap && heap.TryPeek(out entry!, out var expiry) && expiry <= now)
        {
            heap.Dequeue();
            return true;
        }

        entry = null!;
        return false;
    }

    /// <summary>The earliest expiry indexed, or <see cref="long.MaxValue"/>.</summary>
    internal long NextExpiry => _heap is { } heap && heap.TryPeek(out _, out var next) ? next : long.MaxValue;

    /// <summary>Asks for a sweep by <paramref name="expiry"/> (not before <see cref="MinInterval"/> after the last one).
    /// Returns the new sweep time when it is earlier than the one asked for so far (the caller schedules a wake-up for
    /// it), else null.</summary>
    internal long? AskSweep(long expiry)
    {
        if (expiry == long.MaxValue)
        {
            return null;
        }

        var due = Math.Max(expiry, _lastSweep + MinInterval.Ticks);
        if (due >= _sweepAt)
        {
            return null;
        }

        Volatile.Write(ref _sweepAt, due);
        return due;
    }

    /// <summary>Starts a sweep if one is due by <paramref name="schedulerNow"/>: no sweep is asked for any more until
    /// the sweep asks for the next.</summary>
    internal bool TryStartSweep(long schedulerNow)
    {
        if (schedulerNow < _sweepAt)
        {
            return false;
        }

        Volatile.Write(ref _sweepAt, long.MaxValue);
        _lastSweep = schedulerNow;
        return true;
    }
}
