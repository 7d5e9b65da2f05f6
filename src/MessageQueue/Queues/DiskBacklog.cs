namespace MessageQueue.Queues;

/// <summary>
/// A lazy queue's ready messages that are on disk only: the rows with ids in (<see cref="Cursor"/>, <see cref="MaxId"/>]
/// of the queue, how many and how large, and how many of its head rows a head-drop owes (dead-lettered when read back;
/// their size is not known until then, so the average size on disk stands for each). Owns that accounting; reading
/// the rows and putting them in place is the queue's (see <c>BrokerQueue.Lazy</c>).
/// </summary>
/// <remarks>Not thread-safe: used under the owning queue's lock.</remarks>
internal sealed class DiskBacklog(long cursor)
{
    /// <summary>The last row id the queue has read past: every row up to it is in memory or gone.</summary>
    internal long Cursor { get; private set; } = cursor;

    /// <summary>The highest row id spilled.</summary>
    internal long MaxId { get; private set; }

    /// <summary>How many rows are on disk, owed ones included.</summary>
    internal int Count { get; private set; }

    /// <summary>Their stored size.</summary>
    internal long Bytes { get; private set; }

    /// <summary>How many head rows a head-drop owes.</summary>
    internal int OwedDrops { get; private set; }

    private long OwedBytes { get; set; }

    /// <summary>Ready messages on disk: those not owed to a head-drop.</summary>
    internal int ReadyCount => Count - OwedDrops;

    internal long ReadyBytes => Bytes - OwedBytes;

    internal bool IsEmpty => Count == 0;

    /// <summary>Recovery: every stored row of the queue is its own, so the backlog starts below them.</summary>
    internal void StartBelowEverything() => Cursor = 0;

    /// <summary>A row joined in memory while nothing is on disk: every row up to it is in memory or gone.</summary>
    internal void PassedInMemory(long id) => Cursor = Math.Max(Cursor, id);

    /// <summary>Counts a row as part of the backlog, at its tail.</summary>
    internal void Spill(long id, long size)
    {
        Count++;
        Bytes += size;
        MaxId = Math.Max(MaxId, id);
    }

    /// <summary>A row read back leaves the backlog (it is the next in id order).</summary>
    internal void Read(long id, int size)
    {
        Cursor = id;
        Count--;
        Bytes -= size;
    }

    /// <summary>A read of (<see cref="Cursor"/>, <paramref name="upTo"/>], which held <paramref name="held"/> rows, found only
    /// <paramref name="loaded"/>: the rest were deleted behind the queue's back. Returns how many are missing.</summary>
    internal int ForgetMissing(int held, int loaded, long upTo)
    {
        var lost = Math.Max(0, held - loaded);
        Cursor = Math.Max(Cursor, upTo);
        Count = Math.Max(0, Count - lost);
        if (Count == 0)
        {
            Bytes = 0;
        }

        OwedDrops = Math.Min(OwedDrops, Count);
        OwedBytes = OwedDrops == 0 ? 0 : OwedBytes;
        return lost;
    }

    /// <summary>Owes a drop of the oldest ready row still on disk. False when every row is already owed.</summary>
    internal bool TryOweDrop()
    {
        if (OwedDrops >= Count)
        {
            return false;
        }

        OwedBytes += Bytes / Math.Max(1, Count);
        OwedDrops++;
        return true;
    }

    /// <summary>A row a head-drop owed has been dealt with.</summary>
    internal void OweNoMore(int size)
    {
        OwedDrops--;
        OwedBytes = OwedDrops == 0 ? 0 : Math.Max(0, OwedBytes - size);
    }

    /// <summary>A row moves out of the backlog to another queue (a redrive), or comes back when its move was refused
    /// or failed (<paramref name="taken"/> false).</summary>
    internal void Move(int size, bool taken)
    {
        Count += taken ? -1 : 1;
        Bytes = Math.Max(0, Bytes + (taken ? -size : size));
        OwedDrops = Math.Min(OwedDrops, Count);
        OwedBytes = OwedDrops == 0 ? 0 : Math.Min(OwedBytes, Bytes);
    }

    /// <summary>Empties the backlog (purge, delete); the caller deletes its rows, (<paramref name="after"/>,
    /// <paramref name="upTo"/>]. Returns how many ready messages it held.</summary>
    internal int Clear(out long after, out long upTo)
    {
        var count = ReadyCount;
        after = Cursor;
        upTo = MaxId;
        Cursor = Math.Max(Cursor, MaxId);
        Count = 0;
        Bytes = 0;
        OwedDrops = 0;
        OwedBytes = 0;
        return count;
    }
}
