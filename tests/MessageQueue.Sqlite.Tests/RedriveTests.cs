using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>Redrive: whole lazy dead-letter queues, refusals that leave a message where it was, the first or last
/// death as the target, and durable moves that a crash cannot split.</summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class RedriveTests : TempDatabaseFixture
{
    private CrashingStore? _store;

    private IMessageBroker Build(Action<MessageBrokerBuilder> declare, bool crashable = false, int window = 256)
    {
        var builder = new MessageBrokerBuilder();
        if (crashable)
        {
            builder.UseStore(() => _store = new CrashingStore(new SqliteMessageStore(Database, new SqliteStoreOptions { Synchronous = SqliteSynchronous.Normal })), new StorageOptions { LazyWindow = window });
        }
        else
        {
            builder.UseSqlite(Database, o => { o.LazyWindow = window; o.Synchronous = SqliteSynchronous.Normal; });
        }

        declare(builder);
        return builder.Build();
    }

    /// <summary>Publishes <paramref name="count"/> orders to <paramref name="queue"/> and rejects each, so they are
    /// dead-lettered.</summary>
    private static async Task DeadLetterAsync(IMessageBroker broker, string queue, int count, string deadLetterQueue)
    {
        for (var i = 0; i < count; i += 500)
        {
            await broker.PublishBatchAsync("", queue, Enumerable.Range(i, Math.Min(500, count - i)).Select(n => new Order(n)));
        }

        await using var consumer = broker.Consume<Order>(queue, o => o.Prefetch = 100);
        for (var i = 0; i < count; i++)
        {
            await (await consumer.ReceiveAsync().AsTask().WithSafety()).RejectAsync("redrive me");
        }

        await broker.WaitForQueueAsync(deadLetterQueue, q => q.Ready == count);
    }

    private static async Task<List<int>> IdsAsync(IMessageBroker broker, string queue) =>
        [.. (await broker.Management.PeekAsync(queue, int.MaxValue)).Select(m => ((Order)m.Body).Id)];

    [Test]
    public async Task LazyDeadLetterQueue_IsRedrivenWhole_NotJustItsWindow()
    {
        await using var broker = Build(b => b
            .AddQueue("work.dead", o => { o.Mode = QueueMode.Lazy; o.Durable = true; })
            .AddQueue("work", o => { o.Durable = true; o.DeadLetterQueue = "work.dead"; }), window: 16);
        await DeadLetterAsync(broker, "work", 1_000, "work.dead");
        Assert.That(broker.Engine().Context.Topology.GetQueue("work.dead").InMemoryReady, Is.LessThanOrEqualTo(16), "the dead letters are on disk");

        var moved = await broker.Management.RedriveAsync("work.dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(moved, Is.EqualTo(1_000));
            Assert.That(broker.Management.GetQueueInfo("work.dead").Ready, Is.Zero);
            Assert.That(await IdsAsync(broker, "work"), Is.EqualTo(Enumerable.Range(0, 1_000)), "all of them, in order");
        }
    }

    [Test]
    public async Task LazyDeadLetterQueue_RedriveOfSome_KeepsTheRestInOrder_ThenConsumesThem()
    {
        await using var broker = Build(b => b
            .AddQueue("work.dead", o => { o.Mode = QueueMode.Lazy; o.Durable = true; })
            .AddQueue("work", o => { o.Durable = true; o.DeadLetterQueue = "work.dead"; }), window: 16);
        await DeadLetterAsync(broker, "work", 300, "work.dead");
        Assert.That(await broker.Management.RedriveAsync("work.dead", 100), Is.EqualTo(100));
        Assert.That(await broker.Management.RedriveAsync("work.dead", 150), Is.EqualTo(150));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "work"), Is.EqualTo(Enumerable.Range(0, 250)));
            Assert.That(await IdsAsync(broker, "work.dead"), Is.EqualTo(Enumerable.Range(250, 50)));
        }
    }

    [Test]
    public async Task IntoAFullRejectPublishDeadLetterQueue_TheMessageStaysInTheDeadLetterQueue_Once()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("work", o => { o.DeadLetterQueue = "dead"; o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublishDeadLetter; })
            .Build();
        await using (var consumer = broker.Consume<Order>("work"))
        {
            for (var i = 0; i < 2; i++)
            {
                await broker.SendAsync("work", new Order(i));
                await (await consumer.ReceiveAsync()).RejectAsync("redrive me");
            }
        }

        await broker.SendAsync("work", new Order(99)); // work is full now

        var moved = await broker.Management.RedriveAsync("dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(moved, Is.Zero);
            Assert.That(await IdsAsync(broker, "dead"), Is.EqualTo(new[] { 0, 1 }), "each dead letter once, in its place");
            Assert.That(await IdsAsync(broker, "work"), Is.EqualTo(new[] { 99 }));
        }
    }

    [Test]
    public async Task Target_LastDeathByDefault_FirstDeathOnRequest()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("third")
            .AddQueue("second", o => o.DeadLetterQueue = "third")
            .AddQueue("first", o => o.DeadLetterQueue = "second")
            .Build();
        await DeadLetterAsync(broker, "first", 2, "second");
        await using (var consumer = broker.Consume<Order>("second"))
        {
            for (var i = 0; i < 2; i++)
            {
                await (await consumer.ReceiveAsync()).RejectAsync("again");
            }
        }

        await broker.WaitForQueueAsync("third", q => q.Ready == 2);
        Assert.That(await broker.Management.RedriveAsync("third", 1), Is.EqualTo(1));
        Assert.That(await broker.Management.RedriveAsync("third", RedriveTarget.FirstDeath), Is.EqualTo(1));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "second"), Is.EqualTo(new[] { 0 }), "x-last-death-queue");
            Assert.That(await IdsAsync(broker, "first"), Is.EqualTo(new[] { 1 }), "x-first-death-queue");
        }
    }

    [Test]
    public async Task DurableRedrive_CrashRightAfterItReturns_EveryMessageIsInItsQueue()
    {
        const int Count = 3_000;
        void Declare(MessageBrokerBuilder b) => b
            .AddQueue("work.dead", o => o.Durable = true)
            .AddQueue("work", o => { o.Durable = true; o.DeadLetterQueue = "work.dead"; });
        await using (var broker = Build(Declare, crashable: true))
        {
            await DeadLetterAsync(broker, "work", Count, "work.dead");
            Assert.That(await broker.Management.RedriveAsync("work.dead"), Is.EqualTo(Count));
            _store!.Crash();
        }

        await using var restarted = Build(Declare);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(restarted, "work"), Is.EqualTo(Enumerable.Range(0, Count)));
            Assert.That(await IdsAsync(restarted, "work.dead"), Is.Empty);
        }
    }

    [Test]
    public async Task DurableRedrive_CrashInTheMiddle_EveryMessageIsInExactlyOneQueue()
    {
        const int Count = 3_000;
        void Declare(MessageBrokerBuilder b) => b
            .AddQueue("work.dead", o => o.Durable = true)
            .AddQueue("work", o => { o.Durable = true; o.DeadLetterQueue = "work.dead"; });
        for (var round = 0; round < 5; round++)
        {
            await using (var broker = Build(Declare, crashable: true))
            {
                if (round == 0)
                {
                    await DeadLetterAsync(broker, "work", Count, "work.dead");
                }

                var redriving = broker.Management.RedriveAsync("work.dead").AsTask();
                await Task.Yield();
                _store!.Crash(); // somewhere in the middle of the moves
                await redriving;
            }

            await using (var restarted = Build(Declare))
            {
                var work = await IdsAsync(restarted, "work");
                var dead = await IdsAsync(restarted, "work.dead");
                using (Assert.EnterMultipleScope())
                {
                    Assert.That(work.Concat(dead).Order(), Is.EqualTo(Enumerable.Range(0, Count)), $"round {round}: every message once, in one of the queues");
                    Assert.That(round > 0 || work.SequenceEqual(work.Order()), Is.True, "moved in order");
                }

                // Put everything back in the dead-letter queue for the next round.
                await using var consumer = restarted.Consume<Order>("work", o => o.Prefetch = 200);
                for (var i = 0; i < work.Count; i++)
                {
                    await (await consumer.ReceiveAsync().AsTask().WithSafety()).RejectAsync("again");
                }

                await restarted.WaitForQueueAsync("work.dead", q => q.Ready == Count);
            }
        }
    }
}
