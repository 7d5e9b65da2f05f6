namespace MessageQueue.Testing.Stores;

/// <summary>The checks, one method per rule of <see cref="IMessageStore"/>.</summary>
public abstract partial class MessageStoreConformance
{
    // In one file with Checks: a static initializer may only read fields declared before it in the same file.
    private static readonly (string Name, Func<MessageStoreConformance, Task> Run)[] All =
    [
        (nameof(Open_Empty_HoldsNothing), c => Sync(c.Open_Empty_HoldsNothing)),
        (nameof(Write_IsKept_AndReadBackInIdOrderPerQueue), c => Sync(c.Write_IsKept_AndReadBackInIdOrderPerQueue)),
        (nameof(ReadQueue_WithoutEnvelopes_StillGivesTheirLengths), c => Sync(c.ReadQueue_WithoutEnvelopes_StillGivesTheirLengths)),
        (nameof(Batch_ThatFails_WritesNothingOfIt_AndTheStoreGoesOn), c => Sync(c.Batch_ThatFails_WritesNothingOfIt_AndTheStoreGoesOn)),
        (nameof(DeliveryCounts_OnlyGrow_AndChangesForUnknownIdsAreIgnored), c => Sync(c.DeliveryCounts_OnlyGrow_AndChangesForUnknownIdsAreIgnored)),
        (nameof(Deletes_Purges_AndRenumbering_DoWhatTheySay), c => Sync(c.Deletes_Purges_AndRenumbering_DoWhatTheySay)),
        (nameof(ReadReady_GivesReadyRowsOfTheRange_UpToMax_InIdOrder), c => Sync(c.ReadReady_GivesReadyRowsOfTheRange_UpToMax_InIdOrder)),
        (nameof(Read_ById_InTheOrderAsked_LeavingOutIdsNotStored), c => Sync(c.Read_ById_InTheOrderAsked_LeavingOutIdsNotStored)),
        (nameof(TransientRows_AreGoneWhenTheStoreOpensAgain), c => Sync(c.TransientRows_AreGoneWhenTheStoreOpensAgain)),
        (nameof(RememberedIds_AreKept_RememberedAgainWithANewTime_AndForgotten), c => Sync(c.RememberedIds_AreKept_RememberedAgainWithANewTime_AndForgotten)),
        (nameof(Reads_DuringWrites_SeeWholeBatchesOnly), c => Sync(c.Reads_DuringWrites_SeeWholeBatchesOnly)),
        (nameof(SecondStore_OnALocationAnOpenOneOwns_FailsToOpen_AndTakesNothing), c => Sync(c.SecondStore_OnALocationAnOpenOneOwns_FailsToOpen_AndTakesNothing)),
        (nameof(NewerSchema_IsRefused_AndLeftAsItWas), c => Sync(c.NewerSchema_IsRefused_AndLeftAsItWas)),
        (nameof(CorruptStore_FailsToOpen_WithAMessageStoreException), c => Sync(c.CorruptStore_FailsToOpen_WithAMessageStoreException)),
        (nameof(ReadOnlyStore_FailsWithAMessageStoreException_NotAnotherException), c => Sync(c.ReadOnlyStore_FailsWithAMessageStoreException_NotAnotherException)),
        (nameof(FullStore_FailsTheWrite_WritesNothingOfIt_AndTakesSmallerWritesAfter), c => Sync(c.FullStore_FailsTheWrite_WritesNothingOfIt_AndTakesSmallerWritesAfter)),
        (nameof(Broker_KilledAtSomePoint_RecoversWhatWasConfirmedAndNotAcked_InOrder_AndNothingElse), c => c.Broker_KilledAtSomePoint_RecoversWhatWasConfirmedAndNotAcked_InOrder_AndNothingElse()),
    ];

    /// <summary>Gets the names of the checks, each a rule of <see cref="IMessageStore"/>.</summary>
    public static IReadOnlyList<string> Checks { get; } = [.. All.Select(c => c.Name)];

    private static Task Sync(Action check)
    {
        check();
        return Task.CompletedTask;
    }

    private void Open_Empty_HoldsNothing()
    {
        using var store = CreateStore(Location);
        var contents = store.Open();
        Expect.Equal(contents.Queues.Count, 0, "queues in a new store");
        Expect.Equal(contents.MaxId, 0L, "the largest id in a new store");
        Expect.Equal(contents.Remembered.Count, 0, "remembered ids in a new store");
    }

    private void Write_IsKept_AndReadBackInIdOrderPerQueue()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(3, "a"), Row(1, "a"), Row(2, "b"), Row(5, "a", due: 77)], mustBeDurable: true));
        }

        using var reopened = OpenStore(out var contents);
        Expect.Equivalent(contents.Queues, new Dictionary<string, int> { ["a"] = 3, ["b"] = 1 }, "queues and their counts after reopening");
        Expect.Equal(contents.MaxId, 5L, "the largest id after reopening");
        var a = reopened.ReadQueue("a", withEnvelopes: true).ToList();
        Expect.Sequence(Ids(a), [1L, 3, 5], "ids of queue a, in id order");
        Expect.Sequence(a.Select(r => Hex(r.Envelope)), [Hex(1), Hex(3), Hex(5)], "envelopes of queue a");
        Expect.Sequence(a.Select(r => r.DueTicks), [0L, 0, 77], "due times of queue a");
        Expect.Sequence(a.Select(r => r.Length), [Body(1).Length, Body(3).Length, Body(5).Length], "lengths of queue a");
    }

    private void ReadQueue_WithoutEnvelopes_StillGivesTheirLengths()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q")]));
        var rows = store.ReadQueue("q", withEnvelopes: false).ToList();
        Expect.Sequence(rows.Select(r => r.Length), [Body(1).Length, Body(2).Length], "lengths read without envelopes");
    }

    private void Batch_ThatFails_WritesNothingOfIt_AndTheStoreGoesOn()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q")], mustBeDurable: true));

        // Id 1 exists: the batch cannot apply whole, so none of it applies (not row 2, not the delete of 1).
        Expect.Throws<MessageStoreException>(
            () => store.Write(new StoreBatch(inserts: [Row(2, "q"), Row(1, "q")], deletes: [1], mustBeDurable: true)),
            "a batch inserting an id that exists");
        Expect.Sequence(Ids(store.ReadQueue("q", withEnvelopes: false)), [1L], "ids after the failed batch (none of it applies)");

        store.Write(new StoreBatch(inserts: [Row(2, "q")], mustBeDurable: true));
        Expect.Sequence(Ids(store.ReadQueue("q", withEnvelopes: false)), [1L, 2], "ids after the next batch");
    }

    private void DeliveryCounts_OnlyGrow_AndChangesForUnknownIdsAreIgnored()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        store.Write(new StoreBatch(deliveries: [(1, 3), (99, 4)]));
        store.Write(new StoreBatch(deliveries: [(1, 2)], deletes: [98], renumbered: [(97, 100)]));
        Expect.Equal(store.ReadQueue("q", withEnvelopes: false).Single().DeliveryCount, 3, "the delivery count after 3 then 2");
    }

    private void Deletes_Purges_AndRenumbering_DoWhatTheySay()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q"), Row(3, "q", due: 50), Row(4, "q"), Row(5, "q"), Row(6, "other")]));
        store.Write(new StoreBatch(deletes: [1], renumbered: [(3, 7)], purges: [("q", 1, 4)]));

        // In order: 3 is renumbered to 7 (and made ready), then 1 is deleted and the purge of (1, 4] deletes the ready 2 and 4.
        var rows = store.ReadQueue("q", withEnvelopes: true).ToList();
        Expect.Sequence(Ids(rows), [5L, 7], "ids of q after delete, renumber and purge");
        Expect.Equal(rows[1].DueTicks, 0L, "the due time of a renumbered row (it is ready)");
        Expect.Equal(Hex(rows[1].Envelope), Hex(3), "the envelope of a renumbered row (it keeps its own)");
        Expect.Sequence(Ids(store.ReadQueue("other", withEnvelopes: false)), [6L], "ids of another queue (the purge is per queue)");
    }

    private void ReadReady_GivesReadyRowsOfTheRange_UpToMax_InIdOrder()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q", due: 9), Row(3, "q"), Row(4, "other"), Row(5, "q"), Row(6, "q")]));
        Expect.Sequence(Ids(store.ReadReady("q", 0, 6, 10)), [1L, 3, 5, 6], "ready ids in (0, 6]");
        Expect.Sequence(Ids(store.ReadReady("q", 1, 5, 10)), [3L, 5], "ready ids in (1, 5]");
        Expect.Sequence(Ids(store.ReadReady("q", 0, 6, 2)), [1L, 3], "at most 2 ready ids in (0, 6]");
        Expect.Equal(Hex(store.ReadReady("q", 0, 6, 10)[0].Envelope), Hex(1), "the envelope of a ready row");
    }

    private void Read_ById_InTheOrderAsked_LeavingOutIdsNotStored()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q"), Row(3, "p")]));
        var rows = store.Read([3, 42, 1]);
        Expect.Sequence(Ids(rows), [3L, 1], "rows read by ids 3, 42, 1");
        Expect.Sequence(rows.Select(r => r.Queue), ["p", "q"], "their queues");
        Expect.Equal(Hex(rows[0].Envelope), Hex(3), "the envelope read by id");
    }

    private void TransientRows_AreGoneWhenTheStoreOpensAgain()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q") with { Transient = true }, Row(3, "lazy") with { Transient = true }]));
            Expect.Equal(store.ReadQueue("q", withEnvelopes: false).Count(), 2, "rows of q while the writer's process lives (transient ones are kept until then)");
        }

        using var reopened = OpenStore(out var contents);
        Expect.Equivalent(contents.Queues, new Dictionary<string, int> { ["q"] = 1 }, "queues after reopening (transient rows gone)");
        Expect.Sequence(Ids(reopened.ReadQueue("q", withEnvelopes: false)), [1L], "ids of q after reopening");
        Expect.Equal(reopened.ReadQueue("lazy", withEnvelopes: false).Count(), 0, "rows of a queue that had only transient rows");
    }

    private void RememberedIds_AreKept_RememberedAgainWithANewTime_AndForgotten()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(remember: [new RememberedId("q", "a", 10), new RememberedId("q", "b", 20), new RememberedId("p", "a", 30)]));
            store.Write(new StoreBatch(remember: [new RememberedId("q", "a", 40)], forget: [new RememberedId("q", "b", 20)]));
        }

        using var reopened = OpenStore(out var contents);
        Expect.Equivalent(contents.Remembered, [new RememberedId("q", "a", 40), new RememberedId("p", "a", 30)], "remembered ids after reopening");
    }

    private void Reads_DuringWrites_SeeWholeBatchesOnly()
    {
        using var store = OpenStore();
        const int PerBatch = 50;
        var reads = 0;
        var torn = new List<int>();
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var count = store.ReadQueue("q", withEnvelopes: false).Count();
                reads++;
                if (count % PerBatch != 0)
                {
                    torn.Add(count);
                }
            }
        });
        long id = 0;
        for (var b = 0; b < 40; b++)
        {
            store.Write(new StoreBatch(inserts: [.. Enumerable.Range(0, PerBatch).Select(_ => Row(++id, "q"))]));
        }

        stop.Cancel();
        reader.Wait();
        Expect.Sequence(torn, [], $"row counts that were not whole batches of {PerBatch} ({reads} reads during 40 writes)");
    }

    private void SecondStore_OnALocationAnOpenOneOwns_FailsToOpen_AndTakesNothing()
    {
        using var first = OpenStore();
        first.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q") with { Transient = true }]));
        using var second = CreateStore(Location);
        var ex = Expect.Throws<MessageStoreException>(() => second.Open(), "opening a second store on a location an open one owns");
        Expect.True(ex.Message.Length > 0, "the exception says why");
        Expect.Equal(first.ReadQueue("q", withEnvelopes: false).Count(), 2, "rows of the first store (the second deleted none of its transient rows)");
    }

    private void NewerSchema_IsRefused_AndLeftAsItWas()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        MakeSchemaNewer(Location);
        using var newer = CreateStore(Location);
        var ex = Expect.Throws<MessageStoreException>(() => newer.Open(), "opening a store of a newer schema");
        Expect.True(
            ex.Message.Contains("newer", StringComparison.OrdinalIgnoreCase) || ex.Message.Contains("version", StringComparison.OrdinalIgnoreCase),
            $"the exception says the store is newer or names the version: \"{ex.Message}\"");
    }

    private void CorruptStore_FailsToOpen_WithAMessageStoreException()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        Corrupt(Location);
        using var damaged = CreateStore(Location);
        Expect.Throws<MessageStoreException>(
            () =>
            {
                damaged.Open();
                _ = damaged.ReadQueue("q", withEnvelopes: true).ToList();
            },
            "opening and reading a corrupt store");
    }

    private void ReadOnlyStore_FailsWithAMessageStoreException_NotAnotherException()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        using var readOnly = CreateReadOnlyStore(Location);
        Expect.Throws<MessageStoreException>(
            () =>
            {
                readOnly.Open();
                readOnly.Write(new StoreBatch(inserts: [Row(2, "q")], mustBeDurable: true));
            },
            "writing to a read-only store");
    }

    private void FullStore_FailsTheWrite_WritesNothingOfIt_AndTakesSmallerWritesAfter()
    {
        var store = Track(CreateFullStore(Location));
        store.Open();
        var big = Enumerable.Range(1, 64).Select(i => new StoredMessage(i, "q", 0, 0, new byte[64 * 1024])).ToList();
        Expect.Throws<MessageStoreException>(() => store.Write(new StoreBatch(inserts: big, mustBeDurable: true)), "a 4 MB write to a full store");
        Expect.Equal(store.ReadQueue("q", withEnvelopes: false).Count(), 0, "rows after the failed write (none of it applies)");
        store.Write(new StoreBatch(inserts: [Row(100, "q")], mustBeDurable: true));
        Expect.Sequence(Ids(store.ReadQueue("q", withEnvelopes: false)), [100L], "ids after a small write that fits");
    }

    private async Task Broker_KilledAtSomePoint_RecoversWhatWasConfirmedAndNotAcked_InOrder_AndNothingElse()
    {
        var dropping = new DroppingStore(CreateStore(Location));
        var broker = Durable(new MessageBrokerBuilder().UseStore(() => dropping)).Build();
        for (var i = 1; i <= 20; i++)
        {
            await broker.SendAsync("q", new ConformanceMessage(i)).ConfigureAwait(false);
        }

        var consumer = broker.Consume<ConformanceMessage>("q");
        for (var i = 1; i <= 5; i++)
        {
            await (await consumer.ReceiveAsync().ConfigureAwait(false)).AckAsync().ConfigureAwait(false);
        }

        await broker.SendAsync("q", new ConformanceMessage(21)).ConfigureAwait(false); // its commit carries the acks before it
        dropping.DropWritesFromNowOn();                                                // the process dies here: nothing later reaches the store
        for (var i = 22; i <= 25; i++)
        {
            await broker.SendAsync("q", new ConformanceMessage(i)).ConfigureAwait(false);
        }

        for (var i = 6; i <= 8; i++)
        {
            await (await consumer.ReceiveAsync().ConfigureAwait(false)).AckAsync().ConfigureAwait(false);
        }

        await consumer.DisposeAsync().ConfigureAwait(false);
        await broker.DisposeAsync().ConfigureAwait(false);

        var restarted = Durable(new MessageBrokerBuilder().UseStore(() => CreateStore(Location))).Build();
        await using (restarted.ConfigureAwait(false))
        {
            var recovered = await restarted.Management.PeekAsync("q", 100).ConfigureAwait(false);
            Expect.Sequence(
                recovered.Select(m => ((ConformanceMessage)m.Body).Id),
                Enumerable.Range(6, 16),
                "messages recovered after the crash (6-21 were confirmed and their acks, if any, were not written; 1-5 were acked; 22-25 never reached the store)");
        }
    }

    private static MessageBrokerBuilder Durable(MessageBrokerBuilder builder) => builder.AddQueue("q", o => o.Durable = true);

    /// <summary>A message the recovery check publishes.</summary>
    /// <param name="Id">Its number.</param>
    public sealed record ConformanceMessage(int Id);
}
