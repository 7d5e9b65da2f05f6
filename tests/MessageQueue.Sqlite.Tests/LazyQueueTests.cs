using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

[TestFixture]
[CancelAfter(60_000)]
public sealed class LazyQueueTests : TempDatabaseFixture
{
    private const int Window = 8;
    private IMessageBroker Build(Action<QueueOptions>? queue = null, Action<MessageBrokerBuilder>? more = null)
    {
        var builder = new MessageBrokerBuilder().UseSqlite(Database, o => o.LazyWindow = Window);
        builder.AddQueue("dead", o => o.Durable = true);
        builder.AddQueue("lazy", o =>
        {
            o.Mode = QueueMode.Lazy;
            o.Durable = true;
            queue?.Invoke(o);
        });
        more?.Invoke(builder);
        return builder.Build();
    }

    private static async Task PublishAsync(IMessageBroker broker, int from, int to, PublishOptions? options = null)
    {
        for (var i = from; i <= to; i++)
        {
            await broker.SendAsync("lazy", new Order(i), options);
        }
    }

    private static int InMemory(IMessageBroker broker) => broker.Engine().Context.Topology.GetQueue("lazy").InMemoryReady;

    /// <summary>Takes every message with a pull consumer (acking each), in the order received.</summary>
    private static async Task<List<int>> DrainAsync(IMessageBroker broker, int count)
    {
        await using var consumer = broker.Consume<Order>("lazy", o => o.Prefetch = 3);
        var ids = new List<int>();
        while (ids.Count < count)
        {
            var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
            ids.Add(delivery.Message.Id);
            await delivery.AckAsync();
        }

        return ids;
    }

    [Test]
    public async Task Backlog_StaysOnDisk_WindowInMemory_ConsumedInOrder()
    {
        await using var broker = Build();
        await PublishAsync(broker, 1, 100);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(100));
            Assert.That(InMemory(broker), Is.EqualTo(Window));
        }

        Assert.That(await DrainAsync(broker, 100), Is.EqualTo(Enumerable.Range(1, 100)));
        await broker.WaitForQueueAsync("lazy", q => q.Ready == 0 && q.Unacked == 0);
        Assert.That(InMemory(broker), Is.Zero);
    }

    [Test]
    public async Task PublishedWhileConsuming_KeepsFifo_AcrossRefills()
    {
        await using var broker = Build();
        await PublishAsync(broker, 1, 30);
        var consuming = DrainAsync(broker, 60);
        await PublishAsync(broker, 31, 60);
        Assert.That(await consuming.WithSafety(), Is.EqualTo(Enumerable.Range(1, 60)));
    }

    [Test]
    public async Task Restart_RecoversBacklogInOrder_WithoutLoadingIt()
    {
        await using (var broker = Build())
        {
            await PublishAsync(broker, 1, 50);
            await PublishAsync(broker, 51, 52, new PublishOptions { Persistent = false });
            await using var consumer = broker.Consume<Order>("lazy", o => o.Prefetch = 1);
            _ = await consumer.ReceiveAsync().AsTask().WithSafety(); // 1 stays unacked until the broker stops
        }

        await using var restarted = Build();
        await restarted.WaitForQueueAsync("lazy", _ => InMemory(restarted) == Window);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(restarted.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(50), "the non-persistent 51 and 52 are gone");
            Assert.That(InMemory(restarted), Is.EqualTo(Window));
        }

        await using var c = restarted.Consume<Order>("lazy", o => o.Prefetch = 1);
        var first = await c.ReceiveAsync().AsTask().WithSafety();
        Assert.That((first.Message.Id, first.Redelivered), Is.EqualTo((1, true)));
        await first.AckAsync();
        await c.DisposeAsync();
        Assert.That(await DrainAsync(restarted, 49), Is.EqualTo(Enumerable.Range(2, 49)));
    }

    [Test]
    public async Task NotDurable_LosesEverythingOnRestart()
    {
        await using (var broker = Build(o => o.Durable = false))
        {
            await PublishAsync(broker, 1, 20);
            Assert.That(broker.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(20));
        }

        await using (var restarted = Build(o => o.Durable = false))
        {
            Assert.That(restarted.Management.GetQueueInfo("lazy").Ready, Is.Zero);
        }

        using var store = new SqliteMessageStore(Database); // opened once the broker let go of the file
        Assert.That(store.Open().Queues, Is.Empty, "transient rows are deleted when the store opens");
    }

    [Test]
    public async Task Peek_ReadsBeyondTheWindow_Purge_DeletesTheBacklog()
    {
        await using (var broker = Build())
        {
            await PublishAsync(broker, 1, 30);
            var peeked = await broker.Management.PeekAsync("lazy", 20);
            Assert.That(peeked.Select(m => ((Order)m.Body).Id), Is.EqualTo(Enumerable.Range(1, 20)));
            Assert.That(await broker.Management.PurgeAsync("lazy"), Is.EqualTo(30));
            Assert.That(broker.Management.GetQueueInfo("lazy").Ready, Is.Zero);
            await PublishAsync(broker, 31, 32);
            Assert.That(await DrainAsync(broker, 2), Is.EqualTo(new[] { 31, 32 }));
        }

        using var store = new SqliteMessageStore(Database);
        Assert.That(store.Open().Queues, Is.Empty);
    }

    [Test]
    public async Task MaxLength_DropHead_DeadLettersTheOldest_EvenWhenOnDisk()
    {
        await using var broker = Build(o =>
        {
            o.MaxLength = 20;
            o.DeadLetterQueue = "dead";
        });
        await PublishAsync(broker, 1, 50);
        await broker.WaitForQueueAsync("dead", q => q.Ready == 30);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(20));
            Assert.That((await broker.Management.PeekAsync("dead", 100)).Select(m => ((Order)m.Body).Id), Is.EqualTo(Enumerable.Range(1, 30)));
        }

        Assert.That(await DrainAsync(broker, 20), Is.EqualTo(Enumerable.Range(31, 20)));
    }

    [Test]
    public async Task MaxLength_RejectPublish_CountsTheBacklogOnDisk()
    {
        await using var broker = Build(o =>
        {
            o.MaxLength = 20;
            o.Overflow = OverflowPolicy.RejectPublish;
        });
        await PublishAsync(broker, 1, 20);
        var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("lazy", new Order(21)));
        Assert.That(ex!.Message, Does.Contain("MaxLength = 20, 20 ready"));
        Assert.That(await DrainAsync(broker, 20), Is.EqualTo(Enumerable.Range(1, 20)));
    }

    [Test]
    public async Task Subscription_WithConcurrency_HandlesEverythingOnce()
    {
        await using var broker = Build();
        await PublishAsync(broker, 1, 300);
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = broker.Subscribe<Order>("lazy", (d, _) =>
        {
            if (seen.AddOrUpdate(d.Message.Id, 1, (_, n) => n + 1) == 1 && seen.Count == 300)
            {
                all.TrySetResult();
            }

            return ValueTask.CompletedTask;
        }, o => o.Concurrency = 4);
        await all.Task.WithSafety();
        await broker.WaitForQueueAsync("lazy", q => q.Acked == 300);
        Assert.That(seen.Values.Distinct(), Is.EqualTo(new[] { 1 }));
    }

    /// <summary>A million messages of about 1 KB: the managed heap stays under 64 MB with all of them queued, and
    /// again halfway through consuming them, which keeps their order.</summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task MillionMessagesOf1KB_HeapStaysUnder64MB_FifoKept()
    {
        const int Count = 1_000_000;
        const long Limit = 64L * 1024 * 1024;
        var padding = new string('x', 1000);
        var logs = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var broker = new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.Synchronous = SqliteSynchronous.Normal)
            .UseLoggerFactory(new LineLoggerFactory(logs.Enqueue))
            .AddQueue("big", o => o.Mode = QueueMode.Lazy)
            .Build();
        for (var i = 0; i < Count; i += 1000)
        {
            await broker.PublishBatchAsync("", "big", Enumerable.Range(i, 1000).Select(n => new Blob(n, padding)));
        }

        var queued = GC.GetTotalMemory(forceFullCollection: true);
        Assert.That(broker.Management.GetQueueInfo("big").Ready, Is.EqualTo(Count));

        await using var consumer = broker.Consume<Blob>("big", o =>
        {
            o.Prefetch = 100;
            o.AckMode = AckMode.Auto;
        });
        long halfway = 0;
        for (var expected = 0; expected < Count; expected++)
        {
            var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
            if (delivery.Message.N != expected || delivery.Message.Padding.Length != padding.Length)
            {
                Assert.Fail($"expected message {expected}, got {delivery.Message.N}; {broker.Management.GetQueueInfo("big")}; logged: {string.Join(" | ", logs)}");
            }

            if (expected == Count / 2)
            {
                halfway = GC.GetTotalMemory(forceFullCollection: true);
            }
        }

        await TestContext.Out.WriteLineAsync($"managed heap: {queued / 1048576.0:F1} MB with {Count} queued, {halfway / 1048576.0:F1} MB halfway through");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(queued, Is.LessThan(Limit));
            Assert.That(halfway, Is.LessThan(Limit));
            Assert.That(logs, Is.Empty);
        }
    }

    [Test]
    public void Lazy_NeedsAStore_AndCannotHavePriorities()
    {
        var noStore = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue("q", o => o.Mode = QueueMode.Lazy).Build());
        var priorities = Assert.Throws<TopologyException>(() => Build(o => o.MaxPriority = 5));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(noStore!.Message, Does.Contain("Queue 'q' sets Mode = Lazy, which the in-memory backend (no message store) cannot honour"));
            Assert.That(priorities!.Message, Does.Contain("'lazy' is lazy and has MaxPriority"));
        }
    }

    [Test]
    public void StorageOptions_OutOfRange_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MessageBrokerBuilder().UseSqlite(Database, o => o.LazyWindow = 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MessageBrokerBuilder().UseSqlite(Database, o => o.MaxBatchSize = 0));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new MessageBrokerBuilder().UseSqlite(Database, o => o.AckDelay = TimeSpan.FromMilliseconds(-1)));
        Assert.That(ex!.ParamName, Is.EqualTo("AckDelay"));
    }
}

public sealed record Blob(int N, string Padding);
