using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Queues;

[TestFixture]
[CancelAfter(20_000)]
public sealed class LengthLimitTests
{
    private static IMessageBroker Create(Action<QueueOptions> q, ManualTimeProvider? time = null)
    {
        var builder = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("q", o => { o.DeadLetterQueue = "dead"; q(o); });
        if (time is not null)
        {
            builder.UseTimeProvider(time);
        }

        return builder.Build();
    }

    private static async Task<List<int>> IdsAsync(IMessageBroker broker, string queue) =>
        [.. (await broker.Management.PeekAsync(queue)).Select(m => ((Order)m.Body).Id)];

    [Test]
    public async Task MaxLength_CountsReadyOnly_UnackedAndDelayedDoNot()
    {
        await using var broker = Create(o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.RejectPublish; });
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(3)));

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var held = await consumer.ReceiveAsync(); // 1 is unacked now: only 2 is ready
        await broker.SendAsync("q", new Order(4));
        await broker.SendAsync("q", new Order(5), new PublishOptions { Delay = TimeSpan.FromHours(1) });

        var info = broker.Management.GetQueueInfo("q");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(held.Message.Id, Is.EqualTo(1));
            Assert.That(info.Ready, Is.EqualTo(2));
            Assert.That(info.Unacked, Is.EqualTo(1));
            Assert.That(info.Delayed, Is.EqualTo(1));
            Assert.That(info.Rejected, Is.EqualTo(1));
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 2, 4 }));
        }
    }

    [Test]
    public async Task DropHead_DeadLettersTheOldestWithMaxlen()
    {
        await using var broker = Create(o => o.MaxLength = 3);
        for (var i = 1; i <= 5; i++)
        {
            var r = await broker.SendAsync("q", new Order(i));
            Assert.That(r.RoutedQueues, Is.EqualTo(1));
        }

        var dead = await broker.Management.PeekAsync("dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 3, 4, 5 }));
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.MaxLength));
            Assert.That(dead[0].Properties.Headers["x-first-death-reason"], Is.EqualTo("maxlen"));
            Assert.That(broker.Management.GetQueueInfo("q").DeadLettered, Is.EqualTo(2));
        }
    }

    [Test]
    public async Task MaxLengthZero_DropHead_DeliversToAWaitingConsumerOrDrops()
    {
        await using var broker = Create(o => o.MaxLength = 0);
        await broker.SendAsync("q", new Order(1));
        Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.EqualTo(1));

        await using var consumer = broker.Consume<Order>("q");
        var receive = consumer.ReceiveAsync().AsTask();
        await broker.WaitForQueueAsync("q", i => i.Consumers == 1);
        await broker.SendAsync("q", new Order(2));
        Assert.That((await receive.WithSafety()).Message.Id, Is.EqualTo(2));
    }

    [Test]
    public async Task RejectPublish_NamesQueueAndLimit_OtherQueuesStillGetIt()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("fan", ExchangeType.Fanout)
            .AddQueue("small", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; })
            .AddQueue("big")
            .Bind("fan", "small")
            .Bind("fan", "big")
            .Build();
        await broker.PublishAsync("fan", "", new Order(1));

        var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await broker.PublishAsync("fan", "", new Order(2)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Queue, Is.EqualTo("small"));
            Assert.That(ex.Limit, Does.Contain("MaxLength = 1"));
            Assert.That(ex.EnqueuedQueues, Is.EqualTo(new[] { "big" }));
            Assert.That(ex.Message, Does.Contain("'small'").And.Contain("still enqueued in 'big'"));
            Assert.That(broker.Management.GetQueueInfo("big").Ready, Is.EqualTo(2));
            Assert.That(broker.Management.GetQueueInfo("small").Ready, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("small").Rejected, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("small").Published, Is.EqualTo(1));
        }
    }

    [Test]
    public async Task RejectPublishDeadLetter_RefusesAndDeadLettersTheNewMessage()
    {
        await using var broker = Create(o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublishDeadLetter; });
        await broker.SendAsync("q", new Order(1));
        var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(2)));

        var dead = await broker.Management.PeekAsync("dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain("dead-lettered with reason 'maxlen'"));
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 1 }));
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 2 }));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo("maxlen"));
        }
    }

    [Test]
    public async Task MaxLengthBytes_MeasuresBytesStringsAndJson()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("bytes", o => { o.MaxLengthBytes = 25; o.Overflow = OverflowPolicy.RejectPublish; })
            .AddQueue("text", o => { o.MaxLengthBytes = 4; o.Overflow = OverflowPolicy.RejectPublish; })
            .AddQueue("json", o => o.MaxLengthBytes = 2 * """{"Id":1,"Kind":"order"}""".Length)
            .Build();
        await broker.SendAsync("bytes", new byte[10]);
        await broker.SendAsync("bytes", new byte[10]);
        var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("bytes", new byte[10]));
        await broker.SendAsync("bytes", new byte[5]); // exactly 25

        await broker.SendAsync("text", "éé"); // 4 UTF-8 bytes, 2 characters
        await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("text", "a"));

        for (var i = 1; i <= 3; i++)
        {
            await broker.SendAsync("json", new Order(i)); // 23 bytes each: the third drops the first
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Limit, Does.Contain("MaxLengthBytes = 25"));
            Assert.That(broker.Management.GetQueueInfo("bytes").Ready, Is.EqualTo(3));
            Assert.That(broker.Management.GetQueueInfo("text").Ready, Is.EqualTo(1));
            Assert.That(await IdsAsync(broker, "json"), Is.EqualTo(new[] { 2, 3 }));
        }
    }

    [Test]
    public async Task MaxLengthBytes_BodyThatCannotBeMeasured_ThrowsAndEnqueuesNothing()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("fan", ExchangeType.Fanout)
            .AddQueue("plain")
            .AddQueue("bytes", o => o.MaxLengthBytes = 1000)
            .Bind("fan", "plain")
            .Bind("fan", "bytes")
            .Build();
        var ex = await Assert.ThrowsAsync<MessageQueueException>(async () => await broker.PublishAsync("fan", "", new SelfReferencing()));
        Assert.That(ex!.Message, Does.Contain("MaxLengthBytes").And.Contain(nameof(SelfReferencing)));
        Assert.That(broker.Management.GetQueueInfo("plain").Ready, Is.Zero);
    }

    public sealed class SelfReferencing
    {
        public SelfReferencing Self => this;
    }

    [Test]
    public async Task Block_PublisherWaitsForRoom_ThenEnqueuesInOrder()
    {
        await using var broker = Create(o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.Block; });
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        var third = broker.SendAsync("q", new Order(3)).AsTask();
        Assert.That(third.IsCompleted, Is.False);

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var first = await consumer.ReceiveAsync(); // takes 1: room for 3
        await third.WithSafety();
        Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 2, 3 }));
        await first.AckAsync();
    }

    [Test]
    public async Task Block_Cancelled_EnqueuesNothingAnywhere()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("fan", ExchangeType.Fanout)
            .AddQueue("other")
            .AddQueue("q", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; })
            .Bind("fan", "other")
            .Bind("fan", "q")
            .Build();
        await broker.PublishAsync("fan", "", new Order(1));
        using var cts = new CancellationTokenSource();
        var blocked = broker.PublishAsync("fan", "", new Order(2), cancellationToken: cts.Token).AsTask();
        Assert.That(blocked.IsCompleted, Is.False);
        await cts.CancelAsync();

        await Assert.CatchAsync<OperationCanceledException>(async () => await blocked);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 1 }));
            Assert.That(await IdsAsync(broker, "other"), Is.EqualTo(new[] { 1 }));
        }

        // Room later does not resurrect the cancelled publish.
        await broker.Management.PurgeAsync("q");
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.Zero);
    }

    [Test]
    public async Task Block_WaitingPublisher_FailsWhenQueueDeletedOrBrokerDisposed()
    {
        var broker = Create(o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; });
        await broker.Management.DeclareQueueAsync("q2", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; });
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q2", new Order(1));
        var onDeleted = broker.SendAsync("q", new Order(2)).AsTask();
        var onDisposed = broker.SendAsync("q2", new Order(2)).AsTask();

        await broker.Management.DeleteQueueAsync("q");
        var deleted = await Assert.ThrowsAsync<TopologyException>(async () => await onDeleted.WithSafety());
        await broker.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await onDisposed.WithSafety());
        Assert.That(deleted!.Message, Does.Contain("'q' was deleted"));
    }

    [Test]
    public async Task Block_DueDelayedMessage_WaitsForRoomThenJoins()
    {
        var time = new ManualTimeProvider();
        await using var broker = Create(o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; }, time);
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(5) });
        await broker.SendAsync("q", new Order(2));
        time.Advance(TimeSpan.FromSeconds(10));
        var info = broker.Management.GetQueueInfo("q");
        Assert.That((info.Ready, info.Delayed), Is.EqualTo((1, 1)));

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var first = await consumer.ReceiveAsync();
        await first.AckAsync();
        var second = await consumer.ReceiveAsync();
        Assert.That((first.Message.Id, second.Message.Id), Is.EqualTo((2, 1)));
    }

    [Test]
    public async Task RejectPublish_DueDelayedMessageInFullQueue_DeadLettersWithMaxlen()
    {
        var time = new ManualTimeProvider();
        await using var broker = Create(o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; }, time);
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(5) });
        await broker.SendAsync("q", new Order(2));
        time.Advance(TimeSpan.FromSeconds(5));
        var dead = await broker.Management.PeekAsync("dead");
        Assert.That(dead.Select(m => (((Order)m.Body).Id, m.Properties.Deaths[0].Reason)), Is.EqualTo(new[] { (1, "maxlen") }));
    }

    [Test]
    public async Task DeadLetterIntoFullRejectingQueue_IsRefusedAndCountedAsDropped()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; })
            .AddQueue("q", o => o.DeadLetterQueue = "dead")
            .Build();
        await using var consumer = broker.Consume<Order>("q");
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        await (await consumer.ReceiveAsync()).RejectAsync();
        await (await consumer.ReceiveAsync()).RejectAsync();

        var q = await broker.WaitForQueueAsync("q", i => i.DeadLettered + i.Dropped == 2);
        using (Assert.EnterMultipleScope())
        {
            Assert.That((q.DeadLettered, q.Dropped), Is.EqualTo((1, 1)));
            Assert.That(broker.Management.GetQueueInfo("dead").Rejected, Is.EqualTo(1));
            Assert.That(await IdsAsync(broker, "dead"), Is.EqualTo(new[] { 1 }));
        }
    }

    [Test]
    public async Task ReturnedMessage_IsNeverRefused_EvenPastTheLimit()
    {
        await using var broker = Create(o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; });
        await broker.SendAsync("q", new Order(1));
        var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        _ = await consumer.ReceiveAsync();
        await broker.SendAsync("q", new Order(2));
        await consumer.DisposeAsync(); // 1 comes back to its place, ahead of 2

        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 1, 2 }));
            await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(3)));
        }
    }

    [Test]
    public async Task DropHead_RequeueIntoAFullQueue_TheReturnedHeadIsDroppedAtOnce_AsInRabbitMq()
    {
        await using var broker = Create(o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.DropHead; });
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        await broker.SendAsync("q", new Order(1));
        var one = await consumer.ReceiveAsync();
        await broker.SendAsync("q", new Order(2));
        await broker.SendAsync("q", new Order(3)); // full: 2 and 3 ready, 1 unacked (not counted)
        await one.NackAsync(requeue: true);       // 1 returns to the head: over the limit, so the head goes

        var dead = await broker.Management.PeekAsync("dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("q").Ready + broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(2), "2 and 3 are left");
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 1 }));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo("maxlen"));
        }

        var next = await consumer.ReceiveAsync();
        Assert.That(next.Message.Id, Is.EqualTo(2));
    }

    [Test]
    public async Task DropHead_ConsumerLeavingAFullQueue_ReturnedMessagesOverTheLimitAreDropped()
    {
        await using var broker = Create(o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.DropHead; });
        var consumer = broker.Consume<Order>("q", o => o.Prefetch = 2);
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        var one = await consumer.ReceiveAsync();
        var two = await consumer.ReceiveAsync();
        await broker.SendAsync("q", new Order(3));
        await broker.SendAsync("q", new Order(4));
        await consumer.DisposeAsync(); // 1 and 2 return ahead of 3 and 4; the two oldest go

        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 3, 4 }));
            Assert.That(await IdsAsync(broker, "dead"), Is.EqualTo(new[] { 1, 2 }));
        }
    }

    [Test]
    public void InvalidLimits_AreReportedAtBuild()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder()
            .AddQueue("a", o => o.MaxLength = -1)
            .AddQueue("b", o => o.MaxLengthBytes = -5)
            .AddQueue("c", o => { o.MaxLength = 0; o.Overflow = OverflowPolicy.Block; })
            .AddQueue("d", o => o.Overflow = (OverflowPolicy)42)
            .AddQueue("e", o => o.DeduplicationWindow = TimeSpan.Zero)
            .AddQueue("f", o => { o.DeduplicationWindow = TimeSpan.FromMinutes(1); o.DeduplicationCapacity = 0; })
            .Build());
        Assert.That(ex!.Problems, Has.Count.EqualTo(6));
        Assert.That(ex.Message, Does.Contain("'a' has MaxLength -1").And.Contain("wait forever").And.Contain("not an OverflowPolicy"));
    }

    [Test]
    public async Task Block_ManyConcurrentPublishers_ReadyNeverExceedsLimit_NothingLost()
    {
        const int Producers = 4, PerProducer = 2_000, Limit = 8;
        await using var broker = Create(o => { o.MaxLength = Limit; o.Overflow = OverflowPolicy.Block; });
        var q = broker.Engine().Context.Topology.GetQueue("q");
        var maxReady = 0;
        q.Changed += () =>
        {
            var ready = q.GetInfo().Ready;
            Concurrency.InterlockedMax(ref maxReady, ready);
        };

        var seen = new int[Producers * PerProducer];
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            Interlocked.Increment(ref seen[d.Message.Id]);
            return ValueTask.CompletedTask;
        }, o => { o.Concurrency = 2; o.Prefetch = 4; });

        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                await broker.SendAsync("q", new Order((p * PerProducer) + i));
            }
        }));
        await Task.WhenAll(producers).WithSafety();
        await broker.WaitForQueueAsync("q", i => i.Acked == Producers * PerProducer);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(maxReady, Is.LessThanOrEqualTo(Limit));
            Assert.That(seen, Is.All.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("q").Rejected, Is.Zero);
        }
    }
}
