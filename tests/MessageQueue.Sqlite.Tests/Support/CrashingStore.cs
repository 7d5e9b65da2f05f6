namespace MessageQueue.Sqlite.Tests.Support;

/// <summary>
/// A store that behaves as a process killed at some moment: from <see cref="Crash"/> on, every write is dropped
/// (it reports success, as a write that was still in memory when the process died), so a restart on the same file
/// sees exactly what was committed before. <see cref="FailNextWrite"/> makes one write throw instead.
/// </summary>
internal sealed class CrashingStore(IMessageStore inner) : IMessageStore
{
    private volatile bool _crashed;
    private volatile bool _failNext;

    public void Crash() => _crashed = true;

    public void FailNextWrite() => _failNext = true;

    public StoreContents Open() => inner.Open();

    public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

    public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

    public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

    public void Write(StoreBatch batch)
    {
        if (_failNext)
        {
            _failNext = false;
            throw new MessageStoreException("the disk failed (simulated)");
        }

        if (!_crashed)
        {
            inner.Write(batch);
        }
    }

    public void Dispose() => inner.Dispose();
}
