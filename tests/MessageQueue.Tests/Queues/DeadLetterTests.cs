using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Queues;

[TestFixture]
[CancelAfter(20_000)]
public sealed class DeadLetterTests
{
    [Test]
    public async Task Reject_RecordsDeathAndHeaders_RoutesWithOwnKeyThroughDlx()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddExchange("orders", ExchangeType.Topic)
            .AddExchange("dlx", ExchangeType.Direct)
            .AddQueue("work", o => o.DeadLetterExchange = "dlx")
            .AddQueue("dead-created").AddQueue("dead-other")
            .Bind("orders", "work", "order.*")
            .Bind("dlx", "dead-created", "order.created")
            .Bind("dlx", "dead-other", "order.other")
            .Build();

        await broker.PublishAsync("orders", "order.created", new Order(1), new PublishOptions { Headers = new Dictionary<string, object?> { ["app"] = "x" } });
        await using var consumer = broker.Consume<Order>("work");
        var d = await consumer.ReceiveAsync();
        time.Advance(TimeSpan.FromMinutes(1));
        await d.RejectAsync("bad order");

        var dead = (await broker.Management.PeekAsync("dead-created")).Single();
        var death = dead.Properties.Deaths.Single();
        var h = dead.Properties.Headers;
        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("dead-other").Ready, Is.Zero);
            Assert.That(death.Queue, Is.EqualTo("work"));
            Assert.That(death.Reason, Is.EqualTo("rejected"));
            Assert.That(death.Count, Is.EqualTo(1));
            Assert.That(death.Exchange, Is.EqualTo("orders"));
            Assert.That(death.RoutingKeys, Is.EqualTo(new[] { "order.created" }));
            Assert.That(death.Time, Is.EqualTo(time.GetUtcNow()));
            Assert.That(h["x-first-death-queue"], Is.EqualTo("work"));
            Assert.That(h["x-first-death-reason"], Is.EqualTo("rejected"));
            Assert.That(h["x-first-death-exchange"], Is.EqualTo("orders"));
            Assert.That(h["x-last-death-queue"], Is.EqualTo("work"));
            Assert.That(h["x-rejection-reason"], Is.EqualTo("bad order"));
            Assert.That(h["app"], Is.EqualTo("x"));
            Assert.That(dead.Properties.MessageId, Is.EqualTo(d.Properties.MessageId));
            Assert.That(dead.Exchange, Is.EqualTo("dlx"));
            Assert.That(dead.RoutingKey, Is.EqualTo("order.created"));
            Assert.That(broker.Management.GetQueueInfo("work").DeadLettered, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task DeadLetterRoutingKey_ReplacesMessageKey()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("dlx", ExchangeType.Direct)
            .AddQueue("work", o => { o.DeadLetterExchange = "dlx"; o.DeadLetterRoutingKey = "failed"; })
            .AddQueue("failed")
            .Bind("dlx", "failed", "failed")
            .Build();
        await broker.SendAsync("work", new Order(1));
        await using var c = broker.Consume<Order>("work");
        await (await c.ReceiveAsync()).NackAsync(requeue: false);
        var dead = (await broker.Management.PeekAsync("failed")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(dead.RoutingKey, Is.EqualTo("failed"));
            Assert.That(dead.Properties.Deaths[0].RoutingKeys, Is.EqualTo(new[] { "work" }), "the death records the key the message had");
        });
    }

    [Test]
    public async Task MaxDeliveryCount_DeadLettersWithDeliveryLimit()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead").AddQueue("q", o => { o.MaxDeliveryCount = 3; o.DeadLetterQueue = "dead"; }).Build();
        await broker.SendAsync("q", new Order(1));
        await using var c = broker.Consume<Order>("q");
        for (var i = 1; i <= 3; i++)
        {
            var d = await c.ReceiveAsync();
            Assert.That(d.DeliveryCount, Is.EqualTo(i));
            await d.NackAsync(requeue: true);
        }

        var dead = (await broker.Management.PeekAsync("dead")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(dead.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.DeliveryLimit));
            Assert.That(dead.Properties.Headers["x-first-death-reason"], Is.EqualTo("delivery_limit"));
            Assert.That(c.TryReceive(out _), Is.False);
        });
    }

    [Test]
    public async Task DeathHistory_OneRecordPerQueueAndReason_NewestFirst_FirstDeathNeverChanges()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("b", o => o.DeadLetterQueue = "a")
            .AddQueue("a", o => o.DeadLetterQueue = "b")
            .Build();
        await broker.SendAsync("a", new Order(1));
        await using var ca = broker.Consume<Order>("a");
        await using var cb = broker.Consume<Order>("b");

        await (await ca.ReceiveAsync()).RejectAsync();   // a -> b
        await (await cb.ReceiveAsync()).RejectAsync();   // b -> a
        await (await ca.ReceiveAsync()).RejectAsync();   // a -> b again
        var d = await cb.ReceiveAsync();
        var deaths = d.Properties.Deaths;
        Assert.Multiple(() =>
        {
            Assert.That(deaths.Select(x => (x.Queue, x.Reason, x.Count)), Is.EqualTo(new[] { ("a", "rejected", 2L), ("b", "rejected", 1L) }));
            Assert.That(d.Properties.Headers["x-first-death-queue"], Is.EqualTo("a"));
            Assert.That(d.Properties.Headers["x-last-death-queue"], Is.EqualTo("a"));
            Assert.That(d.DeliveryCount, Is.EqualTo(1), "a dead letter is a new message in its new queue");
        });
    }

    [Test]
    public async Task CycleGuard_AutomaticDeathBackToSameQueue_IsDropped()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("self", o => { o.DeadLetterQueue = "self"; o.MaxDeliveryCount = 1; })
            .Build();
        await broker.SendAsync("self", new Order(1));
        await using var c = broker.Consume<Order>("self");
        await (await c.ReceiveAsync()).NackAsync(requeue: true);   // delivery_limit: automatic, would loop
        var info = await broker.WaitForQueueAsync("self", i => i.Dropped == 1);
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.Zero);
            Assert.That(info.DeadLettered, Is.Zero);
        });
    }

    [Test]
    public async Task CycleGuard_RejectedDeathBackToSameQueue_IsAllowed()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("self", o => o.DeadLetterQueue = "self").Build();
        await broker.SendAsync("self", new Order(1));
        await using var c = broker.Consume<Order>("self");
        await (await c.ReceiveAsync()).RejectAsync();
        var again = await c.ReceiveAsync();
        Assert.That(again.Properties.Deaths.Single().Reason, Is.EqualTo("rejected"));
    }

    [Test]
    public async Task NoDeadLetterTarget_DropsAndCounts()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        await using var c = broker.Consume<Order>("q");
        await (await c.ReceiveAsync()).RejectAsync();
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Dropped, Is.EqualTo(1));
            Assert.That(info.DeadLettered, Is.Zero);
            Assert.That(info.Ready + info.Unacked, Is.Zero);
        });
    }

    [Test]
    public async Task DeliveryLimit_ReachedWhenAConsumerJoinsOrAcks_IsDeadLetteredAtOnce()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("work", o => { o.MaxDeliveryCount = 1; o.DeadLetterQueue = "dead"; })
            .Build();
        await broker.SendAsync("work", new Order(1));
        await broker.SendAsync("work", new Order(2));
        var first = broker.Consume<Order>("work", o => o.Prefetch = 2);
        _ = await first.ReceiveAsync();
        _ = await first.ReceiveAsync();
        await first.DisposeAsync(); // both come back, delivered once: at their limit

        await using var second = broker.Consume<Order>("work"); // its first hand-over finds 1 at the limit
        Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.GreaterThanOrEqualTo(1), "dead-lettered when the consumer joined, not at some later call");

        await broker.SendAsync("work", new Order(3));
        var three = await second.ReceiveAsync();
        await three.AckAsync();
        Assert.That(await broker.Management.PeekAsync("dead"), Has.Count.EqualTo(2));
    }
}
