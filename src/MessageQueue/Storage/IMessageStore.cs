namespace MessageQueue;

/// <summary>
/// Where durable queues keep their messages. The broker calls it from one writer at a time and batches: each
/// <see cref="Write"/> is one transaction that must apply completely or not at all. The built-in store is SQLite
/// (<c>MessageQueue.Sqlite</c>); others can be added by implementing this interface.
/// </summary>
/// <remarks>
/// A store keeps opaque envelopes (the broker encodes properties and the serialized body); it needs to
/// remember, per message, its id, queue, delivery count and due time, and return them in id order.
/// </remarks>
public interface IMessageStore : IDisposable
{
    /// <summary>Opens the store (creating its schema on first use) and returns every stored message in id order.</summary>
    /// <returns>The stored messages.</returns>
    /// <exception cref="MessageStoreException">The store cannot be opened, or its schema is newer than this code understands.</exception>
    IReadOnlyList<StoredMessage> Open();

    /// <summary>Applies a batch in one transaction, all of it or, when it throws, none of it: first the inserts,
    /// then the delivery counts, then the deletes (a delete or count for an id not stored is ignored).</summary>
    /// <param name="batch">The changes.</param>
    /// <exception cref="MessageStoreException">The store failed; nothing of the batch was written.</exception>
    void Write(StoreBatch batch);
}

/// <summary>One stored message of a durable queue.</summary>
/// <param name="Id">The broker-assigned id; ids grow with publish order.</param>
/// <param name="Queue">The queue the message is in.</param>
/// <param name="DeliveryCount">How many times it was delivered (written lazily: it may lag behind).</param>
/// <param name="DueTicks">When a delayed message becomes ready (UTC ticks), or 0.</param>
/// <param name="Envelope">The encoded properties and body.</param>
public sealed record StoredMessage(long Id, string Queue, int DeliveryCount, long DueTicks, ReadOnlyMemory<byte> Envelope);

/// <summary>Changes written to a store in one transaction.</summary>
public sealed class StoreBatch
{
    /// <summary>Gets the messages to insert.</summary>
    public List<StoredMessage> Inserts { get; } = [];

    /// <summary>Gets the ids of messages to delete (acked, dead-lettered elsewhere, expired, purged).</summary>
    public List<long> Deletes { get; } = [];

    /// <summary>Gets delivery counts to record.</summary>
    public List<(long Id, int DeliveryCount)> Deliveries { get; } = [];

    /// <summary>Gets or sets whether the batch confirms publishes, so it must be on disk when <see cref="IMessageStore.Write"/>
    /// returns. Batches of only acks, delivery counts and dead letters may be written with less care (a lost ack
    /// causes a redelivery, never a loss).</summary>
    public bool MustBeDurable { get; set; }

    /// <summary>Gets whether the batch is empty.</summary>
    public bool IsEmpty => Inserts.Count == 0 && Deletes.Count == 0 && Deliveries.Count == 0;

    /// <summary>Gets how many changes the batch holds.</summary>
    public int Count => Inserts.Count + Deletes.Count + Deliveries.Count;
}
