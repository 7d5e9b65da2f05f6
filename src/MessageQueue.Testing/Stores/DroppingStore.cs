namespace MessageQueue.Testing.Stores;

/// <summary>
/// Wraps a store and, from <see cref="DropWritesFromNowOn"/> on, drops every write while reporting success: what a
/// process killed at that moment leaves behind (the writes it still had in memory never reached the store). A
/// restart on the same location must find exactly what was written before.
/// </summary>
/// <param name="inner">The store to wrap; disposed with the wrapper.</param>
public sealed class DroppingStore(IMessageStore inner) : IMessageStore
{
    private volatile bool _dropping;

    /// <summary>Gets how many writes reached the inner store.</summary>
    public int Written { get; private set; }

    /// <summary>Drops every later write (the simulated crash).</summary>
    public void DropWritesFromNowOn() => _dropping = true;

    /// <inheritdoc/>
    public StoreContents Open() => inner.Open();

    /// <inheritdoc/>
    public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

    /// <inheritdoc/>
    public void Write(StoreBatch batch)
    {
        if (!_dropping)
        {
            inner.Write(batch);
            Written++;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => inner.Dispose();

    /// <inheritdoc/>
    public override string? ToString() => inner.ToString();
}
