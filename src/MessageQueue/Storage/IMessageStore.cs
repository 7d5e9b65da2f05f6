namespace MessageQueue;

/// <summary>
/// Where durable and lazy queues keep their messages. The built-in store is SQLite (<c>MessageQueue.Sqlite</c>);
/// others implement this interface and prove it with the store conformance suite
/// (<c>MessageQueue.Testing.Stores.MessageStoreConformance</c> in the <c>MessageQueue.Testing</c> package).
/// </summary>
/// <remarks>
/// <para><b>What a store keeps.</b> Per message: its id (given by the broker, unique, growing with publish order), its
/// queue, its delivery count, its due time (0 when ready), whether it is transient, and an opaque envelope (the broker
/// encodes properties and body; a store never looks inside). Per durable deduplication window: remembered ids.</para>
/// <para><b>Batch atomicity.</b> Each <see cref="Write"/> is one transaction: after it returns, all of the batch is
/// stored; when it throws, none of it is, and the store is as before (a later <see cref="Write"/> may succeed: the
/// broker retries what nobody waits on). A process killed during <see cref="Write"/> leaves the store with the
/// whole batch or none of it. When <see cref="StoreBatch.MustBeDurable"/> is set, the batch is on stable storage
/// (it survives a power cut, as far as the store's settings promise) before <see cref="Write"/> returns.</para>
/// <para><b>Order.</b> Reads return messages in id order. Within a batch, the changes are applied in the order
/// <see cref="Write"/> lists; across batches, in call order.</para>
/// <para><b>Delivery counts only grow.</b> A recorded count lower than the stored one is ignored, so counts written
/// late or twice never go back.</para>
/// <para><b>Transient messages</b> belong to the process that wrote them (non-persistent messages, lazy queues that are
/// not durable): <see cref="Open"/> deletes them before it reports anything.</para>
/// <para><b>Read isolation.</b> <see cref="ReadQueue"/>, <see cref="ReadReady"/> and <see cref="Read"/> may run on any
/// thread, also while <see cref="Write"/> runs on the writer's, and see every batch whose <see cref="Write"/>
/// returned, and nothing of one in progress. <see cref="Write"/> is called by one thread at a time.</para>
/// <para><b>Ownership.</b> One broker uses a store at a time; a store that can be opened by two processes (a file)
/// refuses or waits for a second opener (the SQLite store: <c>SqliteStoreOptions.OwnerWaitTimeout</c>).</para>
/// <para><b>Failures.</b> Every failure is a <see cref="MessageStoreException"/> that names the store (its
/// <see cref="object.ToString"/> is used in messages: name the file, never a password) and, for a read, what
/// could not be read. A failure never leaves a partial batch.</para>
/// </remarks>
public interface IMessageStore : IDisposable
{
    /// <summary>Opens the store: takes ownership of it, creates its schema on first use (or upgrades an older one),
    /// deletes transient messages (they belonged to a process that has ended) and says what it holds. Called once,
    /// before any other member.</summary>
    /// <returns>The queues that have messages with their counts (transient ones deleted), the highest message id
    /// ever stored that is still there (0 for an empty store; the broker gives new ids above it), and the remembered
    /// deduplication ids.</returns>
    /// <exception cref="MessageStoreException">The store cannot be opened (locked, owned by another broker,
    /// read-only, damaged), or its schema is newer than this code understands; nothing in it was changed.</exception>
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

/// <summary>Changes written to a store in one transaction. Read-only to a store; the broker fills it (a store's own
/// tests make one with the constructor).</summary>
public sealed class StoreBatch
{
    /// <summary>Creates an empty batch (the broker fills it).</summary>
    public StoreBatch()
    {
    }

    /// <summary>Creates a batch of the given changes (for a store's own tests and tools).</summary>
    /// <param name="inserts">Messages to insert.</param>
    /// <param name="deletes">Ids of messages to delete.</param>
    /// <param name="deliveries">Delivery counts to record.</param>
    /// <param name="renumbered">Delayed messages that became due, with their new ids.</param>
    /// <param name="purges">Ranges of ready messages to delete.</param>
    /// <param name="remember">Deduplication ids to remember.</param>
    /// <param name="forget">Deduplication ids to forget.</param>
    /// <param name="mustBeDurable">Whether the batch confirms publishes.</param>
    public StoreBatch(
        IEnumerable<StoredMessage>? inserts = null,
        IEnumerable<long>? deletes = null,
        IEnumerable<(long Id, int DeliveryCount)>? deliveries = null,
        IEnumerable<(long Id, long NewId)>? renumbered = null,
        IEnumerable<(string Queue, long AfterId, long UpToId)>? purges = null,
        IEnumerable<RememberedId>? remember = null,
        IEnumerable<RememberedId>? forget = null,
        bool mustBeDurable = false)
    {
        MutableInserts.AddRange(inserts ?? []);
        MutableDeletes.AddRange(deletes ?? []);
        MutableDeliveries.AddRange(deliveries ?? []);
        MutableRenumbered.AddRange(renumbered ?? []);
        MutablePurges.AddRange(purges ?? []);
        MutableRemember.AddRange(remember ?? []);
        MutableForget.AddRange(forget ?? []);
        MustBeDurable = mustBeDurable;
    }

    /// <summary>Gets the messages to insert.</summary>
    public IReadOnlyList<StoredMessage> Inserts => MutableInserts;

    /// <summary>Gets the ids of messages to delete (acked, dead-lettered elsewhere, expired, purged).</summary>
    public IReadOnlyList<long> Deletes => MutableDeletes;

    /// <summary>Gets delayed messages that became due: each row takes the new id (so it sorts at the tail of its
    /// queue, where it joined) and its due time becomes 0.</summary>
    public IReadOnlyList<(long Id, long NewId)> Renumbered => MutableRenumbered;

    /// <summary>Gets the ranges of ready messages to delete: every message of the queue with due time 0 and an id in
    /// (AfterId, UpToId] (a lazy queue's backlog on disk, purged).</summary>
    public IReadOnlyList<(string Queue, long AfterId, long UpToId)> Purges => MutablePurges;

    /// <summary>Gets delivery counts to record (a count lower than the stored one is ignored: counts only grow).</summary>
    public IReadOnlyList<(long Id, int DeliveryCount)> Deliveries => MutableDeliveries;

    /// <summary>Gets the message ids deduplication windows start remembering.</summary>
    public IReadOnlyList<RememberedId> Remember => MutableRemember;

    /// <summary>Gets the message ids deduplication windows forget (their window passed).</summary>
    public IReadOnlyList<RememberedId> Forget => MutableForget;

    /// <summary>Gets whether the batch confirms publishes, so it must be on disk when <see cref="IMessageStore.Write"/>
    /// returns. Batches of only acks, delivery counts and dead letters may be written with less care (a lost ack
    /// causes a redelivery, never a loss).</summary>
    public bool MustBeDurable { get; internal set; }

    /// <summary>Gets whether the batch is empty.</summary>
    public bool IsEmpty => Count == 0;

    /// <summary>Gets how many changes the batch holds.</summary>
    public int Count => MutableInserts.Count + MutableRenumbered.Count + MutableDeletes.Count + MutablePurges.Count + MutableDeliveries.Count + MutableRemember.Count + MutableForget.Count;

    internal List<StoredMessage> MutableInserts { get; } = [];

    internal List<long> MutableDeletes { get; } = [];

    internal List<(long Id, long NewId)> MutableRenumbered { get; } = [];

    internal List<(string Queue, long AfterId, long UpToId)> MutablePurges { get; } = [];

    internal List<(long Id, int DeliveryCount)> MutableDeliveries { get; } = [];

    internal List<RememberedId> MutableRemember { get; } = [];

    internal List<RememberedId> MutableForget { get; } = [];
}
