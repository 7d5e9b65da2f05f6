using System.Text.Json.Serialization;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>Faults that were suspected around the store: a delayed message that fell due and a restart, a dead letter
/// that cannot be stored entering a lazy queue, the lazy queue's retries of a failed read, and closing the store while
/// a write hangs.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class StoreEdgeTests : TempDatabaseFixture
{
    /// <summary>A body System.Text.Json refuses to serialize.</summary>
    public sealed record Unstorable(int Id)
    {
        [JsonInclude]
        public Func<int> Callback { get; init; } = () => 1;
    }

    /// <summary>A store whose next reads of a lazy queue's backlog fail, and whose writes can be held.</summary>
    private sealed class FaultyStore(IMessageStore inner) : IMessageStore
    {
        private readonly ManualResetEventSlim _writes = new(initialState: true);

        public int FailingReads;

        public int Reads;

        public volatile bool DisposedWhileWriting;

        public volatile bool Writing;

        public TaskCompletionSource Disposed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void HoldWrites() => _writes.Reset();

        public void ReleaseWrites() => _writes.Set();

        public StoreContents Open() => inner.Open();

        public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max)
        {
            Interlocked.Increment(ref Reads);
            return Interlocked.Decrement(ref FailingReads) >= 0
                ? throw new MessageStoreException("the disk is busy (simulated)")
                : inner.ReadReady(queue, afterId, upToId, max);
        }

        public void Write(StoreBatch batch)
        {
            Writing = true;
            _writes.Wait();
            inner.Write(batch);
            Writing = false;
        }

        public void Dispose()
        {
            DisposedWhileWriting |= Writing;
            inner.Dispose();
            _writes.Dispose();
            Disposed.TrySetResult();
        }
    }

    [Test]
    public async Task DelayedMessage_ThatFellDue_KeepsItsPlaceInTheQueueAcrossARestart()
    {
        var time = new ManualTimeProvider();
        IMessageBroker Build() => new MessageBrokerBuilder().UseSqlite(Database).UseTimeProvider(time).AddQueue("q", o => o.Durable = true).Build();
        await using (var broker = Build())
        {
            await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromMinutes(1) });
            await broker.SendAsync("q", new Order(2));
            await broker.SendAsync("q", new Order(3));
            time.Advance(TimeSpan.FromMinutes(1)); // 1 joins the tail, behind 2 and 3
            await broker.WaitForQueueAsync("q", i => i.Ready == 3);
            await broker.SendAsync("q", new Order(4));
            Assert.That((await broker.Management.PeekAsync("q")).Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 2, 3, 1, 4 }));
        }

        await using var restarted = Build();
        Assert.That((await restarted.Management.PeekAsync("q")).Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 2, 3, 1, 4 }), "the same order after a restart");
    }

    [Test]
    public async Task DeadLetterThatCannotBeStored_DoesNotOvertakeALazyQueuesBacklogOnDisk()
    {
        var logs = new RecordingLoggerFactory();
        await using var broker = new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.LazyWindow = 2)
            .UseLoggerFactory(logs)
            .AddQueue("dead", o => o.Mode = QueueMode.Lazy)
            .AddQueue("work", o => o.DeadLetterQueue = "dead") // in memory: takes any body
            .Build();
        await using (var consumer = broker.Consume<object>("work", o => o.Prefetch = 10))
        {
            for (var i = 1; i <= 5; i++)
            {
                await broker.SendAsync("work", new Order(i));
                await (await consumer.ReceiveAsync()).RejectAsync();
            }

            await broker.WaitForQueueAsync("dead", q => q.Ready == 5);
            await broker.SendAsync("work", new Unstorable(6));
            await (await consumer.ReceiveAsync()).RejectAsync();
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("dead").Rejected, Is.EqualTo(1), "refused: it cannot join behind the messages on disk");
            Assert.That(broker.Management.GetQueueInfo("work").Dropped, Is.EqualTo(1));
            Assert.That(logs.Entries.Any(e => e.Message.Contains("could not be serialized", StringComparison.Ordinal)), Is.True);
        }

        await using var reader = broker.Consume<Order>("dead");
        var ids = new List<int>();
        for (var i = 0; i < 5; i++)
        {
            var d = await reader.ReceiveAsync().AsTask().WithSafety();
            ids.Add(d.Message.Id);
            await d.AckAsync();
        }

        Assert.That(ids, Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
    }

    [Test]
    public async Task LazyQueue_AFailedRead_IsRetriedOnTheBrokersClock_AndStopsWithTheBroker()
    {
        var time = new ManualTimeProvider();
        FaultyStore? store = null;
        var broker = new MessageBrokerBuilder()
            .UseStore(() => store = new FaultyStore(new SqliteMessageStore(Database)), new StorageOptions { LazyWindow = 4, AckDelay = TimeSpan.Zero } /* no AckDelay timer among the armed ones */)
            .UseTimeProvider(time)
            .UseLoggerFactory(new RecordingLoggerFactory())
            .AddQueue("lazy", o => o.Mode = QueueMode.Lazy)
            .Build();
        for (var i = 0; i < 20; i++)
        {
            await broker.SendAsync("lazy", new Order(i));
        }

        store!.FailingReads = 2;
        await using var consumer = broker.Consume<Order>("lazy", o => { o.Prefetch = 4; o.AckMode = AckMode.Auto; });
        for (var i = 0; i < 4; i++)
        {
            _ = await consumer.ReceiveAsync().AsTask().WithSafety(); // the window; taking it starts a read of the backlog
        }

        await time.WaitForArmedTimersAsync(1); // the failed read waits for the broker's clock
        var reads = Volatile.Read(ref store.Reads);
        Assert.That(consumer.TryReceive(out _), Is.False);
        Assert.That(Volatile.Read(ref store.Reads), Is.EqualTo(reads), "no retry until the clock moves");

        time.Advance(TimeSpan.FromMilliseconds(100)); // first retry fails too: it waits longer
        await time.WaitForArmedTimersAsync(1);
        time.Advance(TimeSpan.FromMilliseconds(200));
        var next = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.That(next.Message.Id, Is.EqualTo(4));

        // Every read fails from now on: the loader is waiting when the broker stops. Loading message 4 started the next
        // read at once, and how many rows it and the reads after it get before this line depends on timing; so the test
        // takes messages (each makes room, which starts a read) until a read fails and waits on the clock.
        store.FailingReads = int.MaxValue / 2;
        var armed = time.WaitForArmedTimersAsync(1);
        while (!armed.IsCompleted)
        {
            await Task.WhenAny(consumer.ReceiveAsync().AsTask(), armed).WithSafety();
        }

        await armed;
        await broker.DisposeAsync().AsTask().WithSafety(); // completes without the clock moving: the wait ends with the broker
        await store.Disposed.Task.WithSafety();
    }

    [Test]
    public async Task Dispose_WhileAWriteHangs_TheStoreIsClosedAfterTheWrite_NeverUnderIt()
    {
        FaultyStore? store = null;
        var broker = new MessageBrokerBuilder()
            .UseStore(() => store = new FaultyStore(new SqliteMessageStore(Database)))
            .AddQueue("q", o => o.Durable = true)
            .Build();
        broker.Engine().Context.Durable!.CloseTimeout = TimeSpan.FromMilliseconds(50);
        store!.HoldWrites();
        var publishing = broker.SendAsync("q", new Order(1)).AsTask();
        await broker.DisposeAsync().AsTask().WithSafety(); // gives up waiting for the writer
        Assert.That(store.Disposed.Task.IsCompleted, Is.False, "not closed under a write");
        store.ReleaseWrites();
        await store.Disposed.Task.WithSafety(); // the writer closed it when its write ended
        await publishing.WithSafety();
        Assert.That(store.DisposedWhileWriting, Is.False);
    }
}
