using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Queues;

[TestFixture]
[CancelAfter(20_000)]
public sealed class TtlTests
{
    private static (IMessageBroker Broker, ManualTimeProvider Time) Create(Action<QueueOptions>? q = null)
    {
        var time = new ManualTimeProvider();
        var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead")
            .AddQueue("q", o => { o.DeadLetterQueue = "dead"; q?.Invoke(o); })
            .Build();
        return (broker, time);
    }

    [Test]
    public async Task QueueTtl_ExpiresEachMessageAfterItsTime_DeadLettersAsExpired()
    {
        var (broker, time) = Create(o => o.MessageTtl = TimeSpan.FromSeconds(10));
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1));
        time.Advance(TimeSpan.FromSeconds(5));
        await broker.SendAsync("q", new Order(2));

        time.Advance(TimeSpan.FromSeconds(4.999));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(2));
        time.Advance(TimeSpan.FromMilliseconds(1));
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.EqualTo(1));
            Assert.That(info.Expired, Is.EqualTo(1));
            Assert.That(info.DeadLettered, Is.EqualTo(1));
        });

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(2));

        var dead = await broker.Management.PeekAsync("dead");
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(d => ((Order)d.Body).Id), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Expired));
            Assert.That(dead[0].Properties.Headers["x-first-death-reason"], Is.EqualTo("expired"));
        });
    }

    [Test]
    public async Task MessageTtl_BehindUnexpiredMessage_StillExpires_OriginalExpirationRecordedAndRemoved()
    {
        var (broker, time) = Create();
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(60) });
        await broker.SendAsync("q", new Order(2), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(5) });

        time.Advance(TimeSpan.FromSeconds(5));
        var info = broker.Management.GetQueueInfo("q");
        var dead = (await broker.Management.PeekAsync("dead")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.EqualTo(1), "the message behind the head left too");
            Assert.That(((Order)dead.Body).Id, Is.EqualTo(2));
            Assert.That(dead.Properties.Deaths[0].OriginalExpiration, Is.EqualTo(TimeSpan.FromSeconds(5)));
            Assert.That(dead.Properties.Expiration, Is.Null, "the dead letter does not expire again downstream");
        });
    }

    [TestCase(30, 10)]
    [TestCase(2, 2)]
    public async Task QueueAndMessageTtl_TheSmallerApplies(int messageSeconds, int expectedSeconds)
    {
        var (broker, time) = Create(o => o.MessageTtl = TimeSpan.FromSeconds(10));
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(messageSeconds) });
        time.Advance(TimeSpan.FromSeconds(expectedSeconds) - TimeSpan.FromMilliseconds(1));
        Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.Zero);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(1));
    }

    [Test]
    public async Task MessageExpiredInConsumerWindow_IsNeverDelivered()
    {
        var (broker, time) = Create(o => o.MessageTtl = TimeSpan.FromSeconds(10));
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 2);
        var first = await consumer.ReceiveAsync();   // both are now in the consumer's window
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.That(consumer.TryReceive(out _), Is.False, "the second expired in the window");
        await first.AckAsync();
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Expired, Is.EqualTo(1));
            Assert.That(info.Acked, Is.EqualTo(1));
            Assert.That(info.Delivered, Is.EqualTo(1), "an expired message does not count as delivered");
            Assert.That(info.Unacked + info.Ready, Is.Zero);
        });
    }

    [Test]
    public async Task TtlZero_DeliveredToWaitingConsumer_ElseExpiresAtOnce()
    {
        var (broker, _) = Create();
        await using var b = broker;
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = TimeSpan.Zero });
        Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(1), "nobody was waiting");

        await using var consumer = broker.Consume<Order>("q");
        var pending = consumer.ReceiveAsync().AsTask();
        await broker.SendAsync("q", new Order(2), new PublishOptions { TimeToLive = TimeSpan.Zero });
        var d = await pending.WithSafety();
        Assert.Multiple(() =>
        {
            Assert.That(d.Message.Id, Is.EqualTo(2));
            Assert.That(d.Properties.Expiration, Is.EqualTo(TimeSpan.Zero));
            Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task RequeuedMessage_StillExpiresOnItsOriginalClock()
    {
        var (broker, time) = Create(o => o.MessageTtl = TimeSpan.FromSeconds(10));
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1));
        await using (var consumer = broker.Consume<Order>("q"))
        {
            var d = await consumer.ReceiveAsync();
            time.Advance(TimeSpan.FromSeconds(8));
            await d.NackAsync(requeue: true);
        }

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.That(broker.Management.GetQueueInfo("q").Expired, Is.EqualTo(1));
    }

    [Test]
    public async Task BadTtl_Rejected()
    {
        Assert.That(() => new MessageBrokerBuilder().AddQueue("q", o => o.MessageTtl = TimeSpan.FromSeconds(-1)).Build(),
            Throws.TypeOf<TopologyException>().With.Message.Contains("MessageTtl"));
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        Assert.That(() => broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(-1) }),
            Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public async Task Sweep_WithALargeBacklog_ExpiresFromTheIndex_WithoutScanningTheReadyList()
    {
        const int Backlog = 200_000;
        var (broker, time) = Create();
        await using var owned = broker;
        var body = new Order(0);
        for (var i = 0; i < Backlog; i++)
        {
            await broker.SendAsync("q", body); // no TTL
        }

        for (var i = 1; i <= 10; i++)
        {
            await broker.SendAsync("q", new Order(i), new PublishOptions { TimeToLive = TimeSpan.FromSeconds(i) });
        }

        var ready = broker.Engine().Context.Topology.GetQueue("q").ReadyVisited;
        time.Advance(TimeSpan.FromSeconds(11)); // sweeps expire the 10 from the back of the queue
        await broker.WaitForQueueAsync("q", i => i.Expired == 10);
        var afterSweep = broker.Engine().Context.Topology.GetQueue("q").ReadyVisited;

        await broker.SendAsync("q", new Order(99), new PublishOptions { TimeToLive = TimeSpan.Zero }); // nobody waits: expires at once
        var afterTtlZero = broker.Engine().Context.Topology.GetQueue("q").ReadyVisited;
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Expired, Is.EqualTo(11));
            Assert.That(info.Ready, Is.EqualTo(Backlog));
            Assert.That(afterSweep - ready, Is.LessThan(1_000), "entries the sweeps looked at");
            Assert.That(afterTtlZero - afterSweep, Is.LessThan(1_000), "entries a TTL-zero publish looked at");
        });

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        Assert.That(consumer.TryReceive(out var first), Is.True);
        Assert.That(first.Message, Is.SameAs(body), "the backlog is intact, in order");
    }
}
