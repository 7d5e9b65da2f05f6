namespace MessageQueue.Queues;

/// <summary>
/// A queue's length limits (<see cref="QueueOptions.MaxLength"/>, <see cref="QueueOptions.MaxLengthBytes"/>) and the
/// places promised against them: publishes reserved while their rows are written, and a lazy queue's due delayed rows
/// on their way to the tail. Also the publishers of a <see cref="OverflowPolicy.Block"/> queue waiting for room. Owns
/// that state; the ready count itself is the queue's (passed in).
/// </summary>
/// <remarks>Not thread-safe: used under the owning queue's lock.</remarks>
internal sealed class LengthLimits(QueueOptions options)
{
    private readonly int _maxLength = options.MaxLength ?? int.MaxValue;
    private readonly long _maxBytes = options.MaxLengthBytes ?? long.MaxValue;
    private long _reservedBytes;
    private long _dueRowsBytes;
    private TaskCompletionSource? _roomSignal;
    private Exception? _waitersFailed;

    /// <summary>Whether the queue has a limit at all.</summary>
    internal bool IsLimited { get; } = options.MaxLength is not null || options.MaxLengthBytes is not null;

    /// <summary>Places held for publishes whose rows are being written.</summary>
    internal int Reserved { get; private set; }

    /// <summary>Places held for due delayed rows being renumbered to the tail.</summary>
    internal int DueRows { get; private set; }

    /// <summary>Whether <paramref name="count"/> messages of <paramref name="bytes"/> fit, promises not counted.</summary>
    internal bool Fits(long count, long bytes) => count <= _maxLength && bytes <= _maxBytes;

    /// <summary>Whether <paramref name="count"/> more messages of <paramref name="bytes"/> fit beside the ready ones and
    /// every place already promised.</summary>
    internal bool HasRoomFor(int readyCount, long readyBytes, long count, long bytes) =>
        Fits(readyCount + Reserved + DueRows + count, readyBytes + _reservedBytes + _dueRowsBytes + bytes);

    /// <summary>Names the limits adding would pass, for an exception or a dead letter's reason.</summary>
    internal string Describe(int readyCount, long readyBytes, long adding, long addingBytes)
    {
        var parts = new List<string>(2);
        if (options.MaxLength is { } max && readyCount + adding > max)
        {
            parts.Add($"MaxLength = {max}, {readyCount} ready");
        }

        if (options.MaxLengthBytes is { } maxBytes && readyBytes + addingBytes > maxBytes)
        {
            parts.Add($"MaxLengthBytes = {maxBytes}, {readyBytes} bytes ready, {addingBytes} more");
        }

        return string.Join("; ", parts);
    }

    /// <summary>Holds (or, <paramref name="held"/> false, gives back) a place for a publish being written.</summary>
    internal void Reserve(long size, bool held)
    {
        Reserved += held ? 1 : -1;
        _reservedBytes += held ? size : -size;
    }

    /// <summary>Holds (or gives back) a place for a due delayed row on its way to the tail.</summary>
    internal void PromiseDueRow(long size, bool held)
    {
        DueRows += held ? 1 : -1;
        _dueRowsBytes += held ? size : -size;
    }

    /// <summary>A task a blocked publisher waits on until room may have been freed (or, once waiters were failed,
    /// that failure).</summary>
    internal Task WaitForRoom() =>
        _waitersFailed is { } failed
            ? Task.FromException(failed)
            : (_roomSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Wakes the waiting publishers to try again.</summary>
    internal void WakeWaiters()
    {
        var signal = _roomSignal;
        _roomSignal = null;
        signal?.TrySetResult();
    }

    internal bool HasWaiters => _roomSignal is not null;

    /// <summary>Fails the waiting publishers with <paramref name="exception"/>; when <paramref name="forever"/>, later
    /// ones too (the broker is stopping).</summary>
    internal void FailWaiters(Exception exception, bool forever)
    {
        if (forever)
        {
            _waitersFailed = exception;
        }

        var signal = _roomSignal;
        _roomSignal = null;
        signal?.TrySetException(exception);
    }
}
