using System.Collections.Concurrent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// Queue semantics every queue mode keeps, as RabbitMQ users expect them: one fixture, run against in-memory,
/// durable and lazy queues (the derived fixtures below). A behaviour a mode does not have is not skipped: the test
/// asserts the mode's documented behaviour instead (a lazy queue refuses priorities at <c>Build()</c>; an in-memory
/// queue is empty after a restart), and <see cref="Exclusions"/> lists them.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public abstract class QueueContract : TempDatabaseFixture
{
    /// <summary>The documented differences between modes, each asserted by the test named.</summary>
    public static readonly IReadOnlyDictionary<string, string> Exclusions = new Dictionary<string, string>
    {
        [nameof(Priorities_HigherFirst_FifoWithinAPriority)] = "Lazy queues keep their backlog on disk in publish order: MaxPriority is refused at Build() (README, Lazy queues).",
        [nameof(Restart_KeepsReadyMessagesInOrder)] = "In-memory queues (and lazy queues that are not durable) lose their messages when the process ends (README, Durable queues).",
    };

    /// <summary>Gets whether queues of this mode survive a restart.</summary>
    protected abstract bool Durable { get; }

    /// <summary>Gets whether queues of this mode are lazy (no priorities).</summary>
    protected abstract bool Lazy { get; }

    /// <summary>Adds what the mode needs to the builder (a store).</summary>
    protected abstract MessageBrokerBuilder Configure(MessageBrokerBuilder builder);

    /// <summary>Makes a queue of this mode.</summary>
    protected abstract void Mode(QueueOptions options);

    [Test]
    public async Task Fifo_DeliversInPublishOrder()
    {
        await using var broker = Build(b => Queue(b, "q"));
        await PublishAsync(broker, "q", 1, 30);
        Assert.That(await ReceiveIdsAsync(broker, "q", 30), Is.EqualTo(Enumerable.Range(1, 30)));
    }

    [Test]
    public async Task Nack_Requeue_GoesBackToItsPlace_Redelivered()
    {
        await using var broker = Build(b => Queue(b, "q"));
        await PublishAsync(broker, "q", 1, 3);
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var first = await ReceiveAsync(consumer);
        await first.NackAsync(requeue: true);
        var again = await ReceiveAsync(consumer);
        Assert.Multiple(() =>
        {
            Assert.That(again.Message.Id, Is.EqualTo(1), "a requeued message goes back to its place, ahead of later ones");
            Assert.That(again.Redelivered, Is.True);
            Assert.That(again.DeliveryCount, Is.EqualTo(2));
        });
        await again.AckAsync();
        Assert.That(await ReceiveIdsAsync(consumer, 2), Is.EqualTo(new[] { 2, 3 }));
    }

    [Test]
    public async Task Ack_RemovesTheMessage_AndASecondSettleIsAnError()
    {
        await using var broker = Build(b => Queue(b, "q"));
        await PublishAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>("q");
        var d = await ReceiveAsync(consumer);
        await d.AckAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.AckAsync());
        var info = broker.Management.GetQueueInfo("q");
        Assert.That((info.Ready, info.Unacked, info.Acked), Is.EqualTo((0, 0, 1L)));
    }

    [Test]
    public async Task NackAndReject_DeadLetterWithHistoryAndReason()
    {
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = "dead"));
        await PublishAsync(broker, "q", 1, 2);
        await using var consumer = broker.Consume<Order>("q");
        await (await ReceiveAsync(consumer)).NackAsync(requeue: false);
        await (await ReceiveAsync(consumer)).RejectAsync("not valid");

        var dead = await PeekWhenAsync(broker, "dead", 2);
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(dead.Select(m => m.Properties.Deaths[0].Reason), Is.All.EqualTo(DeathRecord.Rejected));
            Assert.That(dead.Select(m => m.Properties.Deaths[0].Queue), Is.All.EqualTo("q"));
            Assert.That(dead[0].Properties.Headers["x-first-death-queue"], Is.EqualTo("q"));
            Assert.That(dead[1].Properties.Headers["x-rejection-reason"], Is.EqualTo("not valid"));
        });
    }

    [Test]
    public async Task DeliveryLimit_DeadLettersAfterMaxDeliveries()
    {
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.DeadLetterQueue = "dead"; o.MaxDeliveryCount = 2; }));
        await PublishAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        await (await ReceiveAsync(consumer)).NackAsync(requeue: true);
        await (await ReceiveAsync(consumer)).NackAsync(requeue: true);
        var dead = await PeekWhenAsync(broker, "dead", 1);
        Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.DeliveryLimit));
    }

    [Test]
    public async Task Ttl_ExpiresIntoTheDeadLetterQueue_OnTheBrokersClock()
    {
        var time = new ManualTimeProvider();
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.DeadLetterQueue = "dead"; o.MessageTtl = TimeSpan.FromMinutes(1); }), time);
        await PublishAsync(broker, "q", 1, 2);
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(2));
        time.Advance(TimeSpan.FromSeconds(2));
        var dead = await PeekWhenAsync(broker, "dead", 2);
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(m => m.Properties.Deaths[0].Reason), Is.All.EqualTo(DeathRecord.Expired));
            Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task PerMessageTtl_ExpiresOnlyThatMessage()
    {
        var time = new ManualTimeProvider();
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = "dead"), time);
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(10) });
        await broker.SendAsync("q", new Order(2));
        time.Advance(TimeSpan.FromSeconds(11));
        var dead = await PeekWhenAsync(broker, "dead", 1);
        Assert.Multiple(() =>
        {
            Assert.That(((Order)dead[0].Body).Id, Is.EqualTo(1));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Expired));
        });
        Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 2 }));
    }

    [Test]
    public async Task Redrive_MovesDeadLettersBackToTheirQueue_WithACleanDeliveryCount()
    {
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = "dead"));
        await PublishAsync(broker, "q", 1, 3);
        await using (var consumer = broker.Consume<Order>("q"))
        {
            for (var i = 0; i < 3; i++)
            {
                await (await ReceiveAsync(consumer)).RejectAsync("bad");
            }
        }

        await PeekWhenAsync(broker, "dead", 3);
        Assert.That(await broker.Management.RedriveAsync("dead"), Is.EqualTo(3));
        await using var again = broker.Consume<Order>("q");
        var first = await ReceiveAsync(again);
        Assert.That((first.Message.Id, first.Redelivered), Is.EqualTo((1, false)));
        await first.AckAsync();
        Assert.That(await ReceiveIdsAsync(again, 2), Is.EqualTo(new[] { 2, 3 }));
        Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.Zero);
    }

    [Test]
    public async Task Purge_RemovesReadyMessages_NotUnackedOnes()
    {
        await using var broker = Build(b => Queue(b, "q"));
        await PublishAsync(broker, "q", 1, 10);
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var held = await ReceiveAsync(consumer);
        await broker.WaitForQueueAsync("q", i => i.Unacked == 1);
        Assert.That(await broker.Management.PurgeAsync("q"), Is.EqualTo(9));
        var info = broker.Management.GetQueueInfo("q");
        Assert.That((info.Ready, info.Unacked), Is.EqualTo((0, 1)));
        await held.AckAsync();
    }

    [Test]
    public async Task MaxLength_RejectPublish_RefusesTheNewest()
    {
        await using var broker = Build(b => Queue(b, "q", o => { o.MaxLength = 3; o.Overflow = OverflowPolicy.RejectPublish; }));
        await PublishAsync(broker, "q", 1, 3);
        await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(4)));
        Assert.That(await ReceiveIdsAsync(broker, "q", 3), Is.EqualTo(new[] { 1, 2, 3 }));
    }

    [Test]
    public async Task MaxLength_DropHead_DeadLettersTheOldestAsMaxlen()
    {
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.MaxLength = 3; o.DeadLetterQueue = "dead"; }));
        await PublishAsync(broker, "q", 1, 5);
        var dead = await PeekWhenAsync(broker, "dead", 2);
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(dead.Select(m => m.Properties.Deaths[0].Reason), Is.All.EqualTo(DeathRecord.MaxLength));
        });
        Assert.That(await ReceiveIdsAsync(broker, "q", 3), Is.EqualTo(new[] { 3, 4, 5 }));
    }

    [Test]
    public async Task MaxLength_RejectPublishDeadLetter_RefusesAndDeadLettersTheNewest()
    {
        await using var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.RejectPublishDeadLetter; o.DeadLetterQueue = "dead"; }));
        await PublishAsync(broker, "q", 1, 2);
        await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(3)));
        var dead = await PeekWhenAsync(broker, "dead", 1);
        Assert.Multiple(() =>
        {
            Assert.That(((Order)dead[0].Body).Id, Is.EqualTo(3));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.MaxLength));
        });
    }

    [Test]
    public async Task MaxLength_Block_WaitsForRoom_ThenEnqueuesInOrder()
    {
        await using var broker = Build(b => Queue(b, "q", o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.Block; }));
        await PublishAsync(broker, "q", 1, 2);
        var blocked = broker.SendAsync("q", new Order(3)).AsTask(); // admission is tried before it returns
        Assert.That(blocked.IsCompleted, Is.False, "a full Block queue makes the publisher wait");
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var first = await ReceiveAsync(consumer);
        await first.AckAsync();
        await blocked.WithSafety();
        Assert.That(await ReceiveIdsAsync(consumer, 2), Is.EqualTo(new[] { 2, 3 }));
    }

    [Test]
    public async Task NackWithDelay_RedeliversOnlyWhenTheDelayPassed()
    {
        var time = new ManualTimeProvider();
        await using var broker = Build(b => Queue(b, "q"), time);
        await PublishAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>("q");
        await (await ReceiveAsync(consumer)).NackAsync(requeue: true, delay: TimeSpan.FromMinutes(1));
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromMinutes(1));
        var again = await ReceiveAsync(consumer);
        Assert.That((again.Message.Id, again.DeliveryCount), Is.EqualTo((1, 2)));
    }

    [Test]
    public async Task AckTimeout_ReturnsTheDelivery_AndALateAckSaysSo()
    {
        var time = new ManualTimeProvider();
        await using var broker = Build(b => Queue(b, "q", o => o.AckTimeout = TimeSpan.FromMinutes(1)), time);
        await PublishAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var late = await ReceiveAsync(consumer);
        time.Advance(TimeSpan.FromMinutes(2));
        var again = await ReceiveAsync(consumer);
        Assert.That((again.Message.Id, again.Redelivered), Is.EqualTo((1, true)));
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await late.AckAsync());
        Assert.That(ex!.Message, Does.Contain("ack timeout"));
        await again.AckAsync();
    }

    [Test]
    public async Task Priorities_HigherFirst_FifoWithinAPriority()
    {
        if (Lazy)
        {
            var ex = Assert.Throws<TopologyException>(() => Build(b => Queue(b, "q", o => o.MaxPriority = 5)));
            Assert.That(ex!.Message, Does.Contain("priorities"), Exclusions[nameof(Priorities_HigherFirst_FifoWithinAPriority)]);
            return;
        }

        await using var broker = Build(b => Queue(b, "q", o => o.MaxPriority = 5));
        foreach (var (id, priority) in new[] { (1, 0), (2, 5), (3, 1), (4, 5), (5, 0) })
        {
            await broker.SendAsync("q", new Order(id), new PublishOptions { Priority = (byte)priority });
        }

        Assert.That(await ReceiveIdsAsync(broker, "q", 5), Is.EqualTo(new[] { 2, 4, 3, 1, 5 }));
    }

    [Test]
    public async Task Delay_IsReadyOnlyWhenDue_ThenInDueOrder()
    {
        var time = new ManualTimeProvider();
        await using var broker = Build(b => Queue(b, "q"), time);
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromMinutes(2) });
        await broker.SendAsync("q", new Order(2), new PublishOptions { Delay = TimeSpan.FromMinutes(1) });
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(2));
        time.Advance(TimeSpan.FromMinutes(1));
        await broker.WaitForQueueAsync("q", i => i.Ready == 1);
        time.Advance(TimeSpan.FromMinutes(1));
        await broker.WaitForQueueAsync("q", i => i.Ready == 2);
        Assert.That(await ReceiveIdsAsync(broker, "q", 2), Is.EqualTo(new[] { 2, 1 }));
    }

    [Test]
    public async Task SingleActiveConsumer_OneConsumerGetsEverything_TheNextTakesOverWhenItLeaves()
    {
        await using var broker = Build(b => Queue(b, "q", o => o.SingleActiveConsumer = true));
        var active = broker.Consume<Order>("q", o => o.AckMode = AckMode.Auto);
        await using var standby = broker.Consume<Order>("q", o => o.AckMode = AckMode.Auto);
        await PublishAsync(broker, "q", 1, 3);
        Assert.That(await ReceiveIdsAsync(active, 3, ack: false), Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(standby.TryReceive(out _), Is.False);
        await active.DisposeAsync();
        await PublishAsync(broker, "q", 4, 5);
        Assert.That(await ReceiveIdsAsync(standby, 2, ack: false), Is.EqualTo(new[] { 4, 5 }));
    }

    [Test]
    public async Task OrderingKeys_KeepOrderWithinAKey_WithConcurrentHandlers()
    {
        await using var broker = Build(b => Queue(b, "q"));
        var seen = new ConcurrentDictionary<string, ConcurrentQueue<int>>();
        var handled = 0;
        await using var sub = broker.Subscribe<KeyedOrder>("q", async (d, _) =>
        {
            await Task.Yield();
            seen.GetOrAdd(d.Message.Kind, _ => new()).Enqueue(d.Message.Id);
            Interlocked.Increment(ref handled);
        }, o => { o.Concurrency = 4; o.OrderingKey = d => d.Message.Kind; });
        for (var i = 1; i <= 40; i++)
        {
            await broker.SendAsync("q", new KeyedOrder(i, $"k{i % 3}"));
        }

        await broker.WaitForQueueAsync("q", i => i.Acked == 40);
        foreach (var (key, ids) in seen)
        {
            Assert.That(ids, Is.Ordered, $"key {key}");
        }
    }

    [Test]
    public async Task Deduplication_TheSameIdTwiceIsEnqueuedOnce()
    {
        await using var broker = Build(b => Queue(b, "q", o => o.DeduplicationWindow = TimeSpan.FromHours(1)));
        var first = await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "m-1" });
        var second = await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "m-1" });
        Assert.Multiple(() =>
        {
            Assert.That(first.IsDuplicate, Is.False);
            Assert.That(second.IsDuplicate, Is.True);
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Restart_KeepsReadyMessagesInOrder()
    {
        await using (var broker = Build(b => Queue(b, "q")))
        {
            await PublishAsync(broker, "q", 1, 10);
            await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
            await (await ReceiveAsync(consumer)).AckAsync();
        }

        await using var restarted = Build(b => Queue(b, "q"));
        if (!Durable)
        {
            Assert.That(restarted.Management.GetQueueInfo("q").Ready, Is.Zero, Exclusions[nameof(Restart_KeepsReadyMessagesInOrder)]);
            return;
        }

        Assert.That(await ReceiveIdsAsync(restarted, "q", 9), Is.EqualTo(Enumerable.Range(2, 9)));
    }

    private IMessageBroker Build(Action<MessageBrokerBuilder> declare, TimeProvider? time = null)
    {
        var builder = Configure(new MessageBrokerBuilder());
        if (time is not null)
        {
            builder.UseTimeProvider(time);
        }

        declare(builder);
        return builder.Build();
    }

    private MessageBrokerBuilder Queue(MessageBrokerBuilder builder, string name, Action<QueueOptions>? more = null) =>
        builder.AddQueue(name, o =>
        {
            Mode(o);
            more?.Invoke(o);
        });

    private static async Task PublishAsync(IMessageBroker broker, string queue, int from, int to)
    {
        for (var i = from; i <= to; i++)
        {
            await broker.SendAsync(queue, new Order(i));
        }
    }

    private static async Task<Delivery<Order>> ReceiveAsync(IConsumer<Order> consumer) =>
        await consumer.ReceiveAsync().AsTask().WithSafety();

    private static async Task<List<int>> ReceiveIdsAsync(IMessageBroker broker, string queue, int count)
    {
        await using var consumer = broker.Consume<Order>(queue);
        return await ReceiveIdsAsync(consumer, count);
    }

    private static async Task<List<int>> ReceiveIdsAsync(IConsumer<Order> consumer, int count, bool ack = true)
    {
        var ids = new List<int>();
        for (var i = 0; i < count; i++)
        {
            var d = await ReceiveAsync(consumer);
            ids.Add(d.Message.Id);
            if (ack)
            {
                await d.AckAsync();
            }
        }

        return ids;
    }

    private static async Task<IReadOnlyList<PeekedMessage>> PeekWhenAsync(IMessageBroker broker, string queue, int count)
    {
        await broker.WaitForQueueAsync(queue, i => i.Ready >= count);
        return await broker.Management.PeekAsync(queue, count);
    }
}

/// <summary>A message with an ordering key.</summary>
public sealed record KeyedOrder(int Id, string Kind);

/// <summary>In-memory queues against the queue contract.</summary>
public sealed class InMemoryQueueContract : QueueContract
{
    protected override bool Durable => false;

    protected override bool Lazy => false;

    protected override MessageBrokerBuilder Configure(MessageBrokerBuilder builder) => builder;

    protected override void Mode(QueueOptions options)
    {
    }
}

/// <summary>Durable queues (SQLite) against the queue contract.</summary>
public sealed class DurableQueueContract : QueueContract
{
    protected override bool Durable => true;

    protected override bool Lazy => false;

    protected override MessageBrokerBuilder Configure(MessageBrokerBuilder builder) => builder.UseSqlite(Database);

    protected override void Mode(QueueOptions options) => options.Durable = true;
}

/// <summary>Durable lazy queues (SQLite, a window of 4 in memory so most messages are on disk) against the queue contract.</summary>
public sealed class LazyQueueContract : QueueContract
{
    protected override bool Durable => true;

    protected override bool Lazy => true;

    protected override MessageBrokerBuilder Configure(MessageBrokerBuilder builder) => builder.UseSqlite(Database, o => o.LazyWindow = 4);

    protected override void Mode(QueueOptions options)
    {
        options.Durable = true;
        options.Mode = QueueMode.Lazy;
    }
}
