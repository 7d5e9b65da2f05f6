namespace MessageQueue.Sqlite.Tests.Support;

/// <summary>
/// A store that lets a test step into the broker's store calls: code run before each write (a write that takes
/// time, a write that blocks and fails), and after each read of a queue's ready rows (a read that is slow to come
/// back). Used by the review tests to open the windows that real timing opens rarely.
/// </summary>
internal sealed class HookedStore(IMessageStore inner) : IMessageStore
{
    /// <summary>Runs on the store writer before each write; may throw to fail it.</summary>
    public Action<StoreBatch>? BeforeWrite { get; set; }

    /// <summary>Runs after <see cref="ReadReady"/> read its rows, before they are returned.</summary>
    public Action<string, IReadOnlyList<StoredMessage>>? AfterReadReady { get; set; }

    public StoreContents Open() => inner.Open();

    public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

    public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

    public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max)
    {
        var rows = inner.ReadReady(queue, afterId, upToId, max);
        AfterReadReady?.Invoke(queue, rows);
        return rows;
    }

    public void Write(StoreBatch batch)
    {
        BeforeWrite?.Invoke(batch);
        inner.Write(batch);
    }

    public void Dispose() => inner.Dispose();
}
