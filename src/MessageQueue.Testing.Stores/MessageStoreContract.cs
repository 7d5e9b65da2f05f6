using NUnit.Framework;

namespace MessageQueue.Testing.Stores;

/// <summary>
/// What every <see cref="IMessageStore"/> must do (see the remarks on <see cref="IMessageStore"/>), as tests. Derive a
/// fixture, say how to create your store on a location and how to bring about each fault, and run it:
/// <code>
/// public sealed class MyStoreContract : MessageStoreContract
/// {
///     protected override IMessageStore CreateStore(string location) => new MyStore(location);
///     ...
/// }
/// </code>
/// Each test gets a fresh location (<see cref="NewLocation"/>), deleted after it (<see cref="DeleteLocation"/>).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public abstract class MessageStoreContract
{
    private readonly List<IDisposable> _open = [];

    /// <summary>Gets the location of the current test's store.</summary>
    protected string Location { get; private set; } = "";

    /// <summary>Creates (does not open) a store on <paramref name="location"/>. A second store on a location that an
    /// open one owns must fail <see cref="IMessageStore.Open"/> within a few seconds.</summary>
    /// <param name="location">Where the store keeps its data (from <see cref="NewLocation"/>).</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateStore(string location);

    /// <summary>Creates a store whose storage is full: it opens, but a write of a few megabytes cannot fit.</summary>
    /// <param name="location">The location.</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateFullStore(string location);

    /// <summary>Creates a store that may only read <paramref name="location"/> (a read-only file, a read-only mode).</summary>
    /// <param name="location">The location, which holds a store already.</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateReadOnlyStore(string location);

    /// <summary>Marks the closed store at <paramref name="location"/> as written by a newer version of the store (a
    /// schema it does not understand).</summary>
    /// <param name="location">The location, which holds a closed store.</param>
    protected abstract void MakeSchemaNewer(string location);

    /// <summary>Damages the closed store at <paramref name="location"/> (garbage over its files).</summary>
    /// <param name="location">The location, which holds a closed store.</param>
    protected abstract void Corrupt(string location);

    /// <summary>Gives a fresh location for one test.</summary>
    /// <returns>By default a path in the temporary folder.</returns>
    protected virtual string NewLocation() => Path.Combine(Path.GetTempPath(), $"mq-contract-{Guid.NewGuid():N}.db");

    /// <summary>Deletes what a test left at <paramref name="location"/>.</summary>
    /// <param name="location">The location.</param>
    protected virtual void DeleteLocation(string location)
    {
        var folder = Path.GetDirectoryName(location)!;
        foreach (var file in Directory.GetFiles(folder, Path.GetFileName(location) + "*"))
        {
            File.Delete(file);
        }
    }

    /// <summary>Gives each test a fresh location.</summary>
    [SetUp]
    public void NewStoreLocation() => Location = NewLocation();

    /// <summary>Closes what the test left open and deletes its location.</summary>
    [TearDown]
    public void CloseAndDelete()
    {
        foreach (var d in _open)
        {
            d.Dispose();
        }

        _open.Clear();
        DeleteLocation(Location);
    }

    [Test]
    public void Open_Empty_HoldsNothing()
    {
        var contents = Open();
        Assert.Multiple(() =>
        {
            Assert.That(contents.Queues, Is.Empty);
            Assert.That(contents.MaxId, Is.Zero);
            Assert.That(contents.Remembered, Is.Empty);
        });
    }

    [Test]
    public void Write_IsKept_AndReadBackInIdOrderPerQueue()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(3, "a"), Row(1, "a"), Row(2, "b"), Row(5, "a", due: 77)], mustBeDurable: true));
        }

        using var reopened = OpenStore(out var contents);
        Assert.Multiple(() =>
        {
            Assert.That(contents.Queues, Is.EquivalentTo(new Dictionary<string, int> { ["a"] = 3, ["b"] = 1 }));
            Assert.That(contents.MaxId, Is.EqualTo(5));
            var a = reopened.ReadQueue("a", withEnvelopes: true).ToList();
            Assert.That(a.Select(r => r.Id), Is.EqualTo(new long[] { 1, 3, 5 }));
            Assert.That(a.Select(r => r.Envelope.ToArray()), Is.EqualTo(new[] { Body(1), Body(3), Body(5) }));
            Assert.That(a.Select(r => r.DueTicks), Is.EqualTo(new long[] { 0, 0, 77 }));
            Assert.That(a.Select(r => r.Length), Is.EqualTo(new[] { Body(1).Length, Body(3).Length, Body(5).Length }));
        });
    }

    [Test]
    public void ReadQueue_WithoutEnvelopes_StillGivesTheirLengths()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q")]));
        var rows = store.ReadQueue("q", withEnvelopes: false).ToList();
        Assert.That(rows.Select(r => r.Length), Is.EqualTo(new[] { Body(1).Length, Body(2).Length }));
    }

    [Test]
    public void Batch_ThatFails_WritesNothingOfIt_AndTheStoreGoesOn()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q")], mustBeDurable: true));

        // Id 1 exists: the batch cannot apply whole, so none of it applies (not row 2, not the delete of 1).
        Assert.Throws<MessageStoreException>(() => store.Write(new StoreBatch(inserts: [Row(2, "q"), Row(1, "q")], deletes: [1], mustBeDurable: true)));
        Assert.That(store.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new long[] { 1 }));

        store.Write(new StoreBatch(inserts: [Row(2, "q")], mustBeDurable: true));
        Assert.That(store.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new long[] { 1, 2 }));
    }

    [Test]
    public void DeliveryCounts_OnlyGrow_AndChangesForUnknownIdsAreIgnored()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        store.Write(new StoreBatch(deliveries: [(1, 3), (99, 4)]));
        store.Write(new StoreBatch(deliveries: [(1, 2)], deletes: [98], renumbered: [(97, 100)]));
        Assert.That(store.ReadQueue("q", withEnvelopes: false).Single().DeliveryCount, Is.EqualTo(3));
    }

    [Test]
    public void Deletes_Purges_AndRenumbering_DoWhatTheySay()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q"), Row(3, "q", due: 50), Row(4, "q"), Row(5, "q"), Row(6, "other")]));
        store.Write(new StoreBatch(deletes: [1], renumbered: [(3, 7)], purges: [("q", 1, 4)]));

        // In order: 3 is renumbered to 7 (and made ready), then 1 is deleted and the purge of (1, 4] deletes the ready 2 and 4.
        var rows = store.ReadQueue("q", withEnvelopes: true).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(rows.Select(r => r.Id), Is.EqualTo(new long[] { 5, 7 }));
            Assert.That(rows[1].DueTicks, Is.Zero, "a renumbered row is ready");
            Assert.That(rows[1].Envelope.ToArray(), Is.EqualTo(Body(3)), "a renumbered row keeps its envelope");
            Assert.That(store.ReadQueue("other", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new long[] { 6 }));
        });
    }

    [Test]
    public void ReadReady_GivesReadyRowsOfTheRange_UpToMax_InIdOrder()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q", due: 9), Row(3, "q"), Row(4, "other"), Row(5, "q"), Row(6, "q")]));
        Assert.Multiple(() =>
        {
            Assert.That(store.ReadReady("q", 0, 6, 10).Select(r => r.Id), Is.EqualTo(new long[] { 1, 3, 5, 6 }));
            Assert.That(store.ReadReady("q", 1, 5, 10).Select(r => r.Id), Is.EqualTo(new long[] { 3, 5 }));
            Assert.That(store.ReadReady("q", 0, 6, 2).Select(r => r.Id), Is.EqualTo(new long[] { 1, 3 }));
            Assert.That(store.ReadReady("q", 0, 6, 10)[0].Envelope.ToArray(), Is.EqualTo(Body(1)));
        });
    }

    [Test]
    public void Read_ById_InTheOrderAsked_LeavingOutIdsNotStored()
    {
        using var store = OpenStore();
        store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q"), Row(3, "p")]));
        var rows = store.Read([3, 42, 1]);
        Assert.Multiple(() =>
        {
            Assert.That(rows.Select(r => r.Id), Is.EqualTo(new long[] { 3, 1 }));
            Assert.That(rows.Select(r => r.Queue), Is.EqualTo(new[] { "p", "q" }));
            Assert.That(rows[0].Envelope.ToArray(), Is.EqualTo(Body(3)));
        });
    }

    [Test]
    public void TransientRows_AreGoneWhenTheStoreOpensAgain()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q") with { Transient = true }, Row(3, "lazy") with { Transient = true }]));
            Assert.That(store.ReadQueue("q", withEnvelopes: false).Count(), Is.EqualTo(2), "kept while the writer's process lives");
        }

        using var reopened = OpenStore(out var contents);
        Assert.Multiple(() =>
        {
            Assert.That(contents.Queues, Is.EquivalentTo(new Dictionary<string, int> { ["q"] = 1 }));
            Assert.That(reopened.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new long[] { 1 }));
            Assert.That(reopened.ReadQueue("lazy", withEnvelopes: false), Is.Empty);
        });
    }

    [Test]
    public void RememberedIds_AreKept_RememberedAgainWithANewTime_AndForgotten()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(remember: [new RememberedId("q", "a", 10), new RememberedId("q", "b", 20), new RememberedId("p", "a", 30)]));
            store.Write(new StoreBatch(remember: [new RememberedId("q", "a", 40)], forget: [new RememberedId("q", "b", 20)]));
        }

        using var reopened = OpenStore(out var contents);
        Assert.That(contents.Remembered, Is.EquivalentTo(new[] { new RememberedId("q", "a", 40), new RememberedId("p", "a", 30) }));
    }

    [Test]
    public void Reads_DuringWrites_SeeWholeBatchesOnly()
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
            store.Write(new StoreBatch(inserts: Enumerable.Range(0, PerBatch).Select(_ => Row(++id, "q")).ToList()));
        }

        stop.Cancel();
        reader.Wait();
        Assert.That(torn, Is.Empty, $"a read saw part of a batch ({reads} reads)");
    }

    [Test]
    public void SecondStore_OnALocationAnOpenOneOwns_FailsToOpen_AndTakesNothing()
    {
        using var first = OpenStore();
        first.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q") with { Transient = true }]));
        using var second = CreateStore(Location);
        var ex = Assert.Throws<MessageStoreException>(() => second.Open());
        Assert.That(ex!.Message, Is.Not.Empty);
        Assert.That(first.ReadQueue("q", withEnvelopes: false).Count(), Is.EqualTo(2), "the first one's transient rows were not deleted");
    }

    [Test]
    public void NewerSchema_IsRefused_AndLeftAsItWas()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        MakeSchemaNewer(Location);
        using (var newer = CreateStore(Location))
        {
            var ex = Assert.Throws<MessageStoreException>(() => newer.Open());
            Assert.That(ex!.Message, Does.Contain("newer").IgnoreCase.Or.Contain("version").IgnoreCase);
        }
    }

    [Test]
    public void CorruptStore_FailsToOpen_WithAMessageStoreException()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        Corrupt(Location);
        using var damaged = CreateStore(Location);
        Assert.Throws<MessageStoreException>(() =>
        {
            damaged.Open();
            _ = damaged.ReadQueue("q", withEnvelopes: true).ToList();
        });
    }

    [Test]
    public void ReadOnlyStore_FailsWithAMessageStoreException_NotAnotherException()
    {
        using (var store = OpenStore())
        {
            store.Write(new StoreBatch(inserts: [Row(1, "q")]));
        }

        using var readOnly = CreateReadOnlyStore(Location);
        Assert.Throws<MessageStoreException>(() =>
        {
            readOnly.Open();
            readOnly.Write(new StoreBatch(inserts: [Row(2, "q")], mustBeDurable: true));
        });
    }

    [Test]
    public void FullStore_FailsTheWrite_WritesNothingOfIt_AndTakesSmallerWritesAfter()
    {
        var store = CreateFullStore(Location);
        _open.Add(store);
        store.Open();
        var big = Enumerable.Range(1, 64).Select(i => new StoredMessage(i, "q", 0, 0, new byte[64 * 1024])).ToList();
        Assert.Throws<MessageStoreException>(() => store.Write(new StoreBatch(inserts: big, mustBeDurable: true)));
        Assert.That(store.ReadQueue("q", withEnvelopes: false), Is.Empty);
        store.Write(new StoreBatch(inserts: [Row(100, "q")], mustBeDurable: true));
        Assert.That(store.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new long[] { 100 }));
    }

    [Test]
    public async Task Broker_KilledAtSomePoint_RecoversWhatWasConfirmedAndNotAcked_InOrder_AndNothingElse()
    {
        var dropping = new DroppingStore(CreateStore(Location));
        var broker = Durable(new MessageBrokerBuilder().UseStore(() => dropping)).Build();
        for (var i = 1; i <= 20; i++)
        {
            await broker.SendAsync("q", new ContractMessage(i));
        }

        var consumer = broker.Consume<ContractMessage>("q");
        for (var i = 1; i <= 5; i++)
        {
            await (await consumer.ReceiveAsync()).AckAsync();
        }

        await broker.SendAsync("q", new ContractMessage(21)); // its commit carries the acks before it
        dropping.DropWritesFromNowOn();                       // the process dies here: nothing later reaches the store
        for (var i = 22; i <= 25; i++)
        {
            await broker.SendAsync("q", new ContractMessage(i));
        }

        for (var i = 6; i <= 8; i++)
        {
            await (await consumer.ReceiveAsync()).AckAsync();
        }

        await consumer.DisposeAsync();
        await broker.DisposeAsync();

        await using var restarted = Durable(new MessageBrokerBuilder().UseStore(() => CreateStore(Location))).Build();
        var recovered = await restarted.Management.PeekAsync("q", 100);
        Assert.That(recovered.Select(m => ((ContractMessage)m.Body).Id), Is.EqualTo(Enumerable.Range(6, 16)),
            "messages 6-21 were confirmed and their acks (if any) were not written; 1-5 were acked; 22-25 never reached the store");
    }

    /// <summary>A message the recovery test publishes.</summary>
    /// <param name="Id">Its number.</param>
    public sealed record ContractMessage(int Id);

    private static MessageBrokerBuilder Durable(MessageBrokerBuilder builder) => builder.AddQueue("q", o => o.Durable = true);

    private IMessageStore OpenStore() => OpenStore(out _);

    private IMessageStore OpenStore(out StoreContents contents)
    {
        var store = CreateStore(Location);
        _open.Add(store);
        contents = store.Open();
        return store;
    }

    private StoreContents Open()
    {
        using var store = CreateStore(Location);
        return store.Open();
    }

    private static StoredMessage Row(long id, string queue, long due = 0) => new(id, queue, 0, due, Body(id));

    private static byte[] Body(long id) => [.. BitConverter.GetBytes(id), (byte)(id % 251), 1, 2, 3];
}
