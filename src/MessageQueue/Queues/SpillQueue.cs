namespace MessageQueue.Queues;

/// <summary>The ids (and body sizes) of a lazy queue's ready messages that are on disk only, in queue order:
/// twelve bytes a message, in fixed chunks, so a backlog of millions stays small and never needs one large array.</summary>
internal sealed class SpillQueue
{
    private const int ChunkSize = 4096;
    private readonly Queue<Chunk> _chunks = new();
    private Chunk? _tail;

    internal int Count { get; private set; }

    internal long Bytes { get; private set; }

    internal void Enqueue(long id, int size)
    {
        if (_tail is null || _tail.End == ChunkSize)
        {
            _tail = new Chunk();
            _chunks.Enqueue(_tail);
        }

        _tail.Ids[_tail.End] = id;
        _tail.Sizes[_tail.End++] = size;
        Count++;
        Bytes += size;
    }

    internal (long Id, int Size) Dequeue()
    {
        var head = _chunks.Peek();
        var item = (head.Ids[head.Start], head.Sizes[head.Start]);
        if (++head.Start == head.End && head.End == ChunkSize)
        {
            _chunks.Dequeue();
        }
        else if (head.Start == head.End && ReferenceEquals(head, _tail))
        {
            head.Start = head.End = 0; // empty: reuse the one chunk
        }

        Count--;
        Bytes -= item.Item2;
        return item;
    }

    /// <summary>The size of the message <paramref name="index"/> places from the head.</summary>
    internal int SizeAt(int index)
    {
        foreach (var chunk in _chunks)
        {
            var n = chunk.End - chunk.Start;
            if (index < n)
            {
                return chunk.Sizes[chunk.Start + index];
            }

            index -= n;
        }

        throw new ArgumentOutOfRangeException(nameof(index));
    }

    /// <summary>The first <paramref name="max"/> ids, in order, left in place.</summary>
    internal List<long> PeekIds(int max)
    {
        var ids = new List<long>(Math.Min(max, Count));
        foreach (var chunk in _chunks)
        {
            for (var i = chunk.Start; i < chunk.End && ids.Count < max; i++)
            {
                ids.Add(chunk.Ids[i]);
            }
        }

        return ids;
    }

    /// <summary>Empties the queue, returning every id.</summary>
    internal List<long> Clear()
    {
        var ids = PeekIds(int.MaxValue);
        _chunks.Clear();
        _tail = null;
        Count = 0;
        Bytes = 0;
        return ids;
    }

    private sealed class Chunk
    {
        internal readonly long[] Ids = new long[ChunkSize];
        internal readonly int[] Sizes = new int[ChunkSize];
        internal int Start;
        internal int End;
    }
}
