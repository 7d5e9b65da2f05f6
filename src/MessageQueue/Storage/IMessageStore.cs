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
    /// <summary>Opens the store: creates its schema on first use (or upgrades an older one), deletes transient
    /// messages (they belonged to a process that has ended) and says what it holds.</summary>
    /// <returns>The queues that have messages, and the highest id used.</returns>
    /// <exception cref="MessageStoreException">The store cannot be opened, or its schema is newer than this code understands.</exception>
    StoreContents Open();

    /// <summary>Reads one queue's messages in id order, a page at a time (the caller may stop early).</summary>
    /// <param name="queue">The queue.</param>
    /// <param name="withEnvelopes">Whether to read the envelopes; without them (for lazy queues, whose backlog
    /// stays on disk) <see cref="StoredMessage.Envelope"/> is empty and only <see cref="StoredMessage.Length"/> is set.</param>
    /// <returns>The messages.</returns>
    /// <remarks>May be called from any thread, also while <see cref="Write"/> runs on another; sees every
    /// committed write.</remarks>
    IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes);

    /// <summary>Reads up to <paramref name="max"/> ready messages (due time 0) of one queue with ids in
    /// (<paramref name="afterId"/>, <paramref name="upToId"/>], with their envelopes, in id order: the next part of a
    /// lazy queue's backlog on disk.</summary>
    /// <param name="queue">The queue.</param>
    /// <param name="afterId">Only ids above this.</param>
    /// <param name="upToId">Only ids up to this.</param>
    /// <param name="max">The most messages to read.</param>
    /// <returns>The messages found.</returns>
    /// <remarks>May be called from any thread, also while <see cref="Write"/> runs on another; sees every
    /// committed write.</remarks>
    IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max);

    /// <summary>Reads messages by id, with their envelopes, in the order of <paramref name="ids"/>; ids not stored
    /// are left out.</summary>
    /// <param name="ids">The ids.</param>
    /// <returns>The messages found.</returns>
    /// <remarks>May be called from any thread, also while <see cref="Write"/> runs on another; sees every
    /// committed write.</remarks>
    IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids);

    /// <summary>Applies a batch in one transaction, all of it or, when it throws, none of it: first the inserts,
    /// then the renumberings, then the delivery counts, then the deletes and purges (a delete, renumbering or count
    /// for an id not stored is ignored), then the forgotten and remembered deduplication ids, in that order (remembering an id again replaces its
    /// time: the id was published again after its window). Called by one thread at a time.</summary>
    /// <param name="batch">The changes.</param>
    /// <exception cref="MessageStoreException">The store failed; nothing of the batch was written.</exception>
    void Write(StoreBatch batch);
}

/// <summary>What a store held when it was opened.</summary>
/// <param name="Queues">How many messages each queue has.</param>
/// <param name="MaxId">The highest message id in the store, or 0; new ids continue after it.</param>
/// <param name="Remembered">The message ids remembered by deduplication windows of durable queues.</param>
public sealed record StoreContents(IReadOnlyDictionary<string, int> Queues, long MaxId, IReadOnlyList<RememberedId> Remembered);

/// <summary>A message id a durable queue's deduplication window remembers.</summary>
/// <param name="Queue">The queue.</param>
/// <param name="MessageId">The publisher's message id.</param>
/// <param name="SeenTicks">When it was first published (UTC ticks).</param>
public sealed record RememberedId(string Queue, string MessageId, long SeenTicks);

/// <summary>One stored message of a durable or lazy queue.</summary>
/// <param name="Id">The broker-assigned id; ids grow with publish order.</param>
/// <param name="Queue">The queue the message is in.</param>
/// <param name="DeliveryCount">How many times it was delivered (written lazily: it may lag behind).</param>
/// <param name="DueTicks">When a delayed message becomes ready (UTC ticks), or 0.</param>
/// <param name="Envelope">The encoded properties and body.</param>
public sealed record StoredMessage(long Id, string Queue, int DeliveryCount, long DueTicks, ReadOnlyMemory<byte> Envelope)
{
    /// <summary>Gets whether the message must not survive a restart (a non-persistent message, or any message of
    /// a lazy queue that is not durable): <see cref="IMessageStore.Open"/> deletes it.</summary>
    public bool Transient { get; init; }

    /// <summary>Gets the envelope's length in bytes (also when the envelope itself was not read).</summary>
    public int Length { get; init; } = Envelope.Length;
}

/// <summary>Changes written to a store in one transaction.</summary>
public sealed class StoreBatch
{
    /// <summary>Gets the messages to insert.</summary>
    public List<StoredMessage> Inserts { get; } = [];

    /// <summary>Gets the ids of messages to delete (acked, dead-lettered elsewhere, expired, purged).</summary>
    public List<long> Deletes { get; } = [];

    /// <summary>Gets delayed messages that became due: each row takes the new id (so it sorts at the tail of its
    /// queue, where it joined) and its due time becomes 0.</summary>
    public List<(long Id, long NewId)> Renumbered { get; } = [];

    /// <summary>Gets the ranges of ready messages to delete: every message of the queue with due time 0 and an id in
    /// (AfterId, UpToId] (a lazy queue's backlog on disk, purged).</summary>
    public List<(string Queue, long AfterId, long UpToId)> Purges { get; } = [];

    /// <summary>Gets delivery counts to record.</summary>
    public List<(long Id, int DeliveryCount)> Deliveries { get; } = [];

    /// <summary>Gets the message ids deduplication windows start remembering.</summary>
    public List<RememberedId> Remember { get; } = [];

    /// <summary>Gets the message ids deduplication windows forget (their window passed).</summary>
    public List<RememberedId> Forget { get; } = [];

    /// <summary>Gets or sets whether the batch confirms publishes, so it must be on disk when <see cref="IMessageStore.Write"/>
    /// returns. Batches of only acks, delivery counts and dead letters may be written with less care (a lost ack
    /// causes a redelivery, never a loss).</summary>
    public bool MustBeDurable { get; set; }

    /// <summary>Gets whether the batch is empty.</summary>
    public bool IsEmpty => Count == 0;

    /// <summary>Gets how many changes the batch holds.</summary>
    public int Count => Inserts.Count + Renumbered.Count + Deletes.Count + Purges.Count + Deliveries.Count + Remember.Count + Forget.Count;
}
