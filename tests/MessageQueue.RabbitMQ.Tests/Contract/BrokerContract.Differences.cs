namespace MessageQueue.RabbitMQ.Tests.Contract;

/// <summary>The contract's tests whose assertion differs on RabbitMQ (<see cref="BrokerContract.Exclusions"/>): each
/// asserts what each backend does.</summary>
public abstract partial class BrokerContract
{
    [Test]
    public async Task Peek()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 3);
        var peeked = await broker.Management.PeekAsync(N("q"), 2);
        Assert.That(peeked.Select(m => (((Order)m.Body).Id, m.RoutingKey, m.DeliveryCount)), Is.EqualTo(new[] { (1, N("q"), 0), (2, N("q"), 0) }));

        await using var consumer = broker.Consume<Order>(N("q"));
        var deliveries = new[] { await ReceiveAsync(consumer), await ReceiveAsync(consumer), await ReceiveAsync(consumer) };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(deliveries.Select(d => d.Message.Id), Is.EqualTo(new[] { 1, 2, 3 }), "nothing was taken, the order kept");
            Assert.That(deliveries.Select(d => d.Redelivered), Is.EqualTo(OnRabbitMq ? new[] { true, true, false } : new[] { false, false, false }), "RabbitMQ peeks by taking and returning: what it read is marked redelivered");
        }

        foreach (var d in deliveries)
        {
            await d.AckAsync();
        }
    }

    [Test]
    public async Task QueueInfo_Counters()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 3);
        await using var consumer = broker.Consume<Order>(N("q"), o => o.Prefetch = 1);
        await (await ReceiveAsync(consumer)).AckAsync();
        var held = await ReceiveAsync(consumer);
        var info = broker.Management.GetQueueInfo(N("q"));
        Assert.Multiple(() =>
        {
            Assert.That(info.Name, Is.EqualTo(N("q")));
            Assert.That(info.Ready, Is.EqualTo(1));
            Assert.That(info.Consumers, Is.EqualTo(1));
            Assert.That((info.Unacked, info.Published, info.Acked), Is.EqualTo(OnRabbitMq ? (0, 0L, 0L) : (1, 3L, 1L)));
        });
        await held.AckAsync();
    }

    [Test]
    public async Task DeliveryCount_PastTwo()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>(N("q"), o => o.Prefetch = 1);
        await (await ReceiveAsync(consumer)).NackAsync();
        await (await ReceiveAsync(consumer)).NackAsync();
        var third = await ReceiveAsync(consumer);
        Assert.That((third.Redelivered, third.DeliveryCount), Is.EqualTo((true, OnRabbitMq ? 2 : 3)));
        await third.AckAsync();
    }

    [Test]
    public async Task Transaction_Mandatory()
    {
        var broker = Build(b => b.AddExchange(N("x"), ExchangeType.Direct));
        await using var tx = broker.BeginTransaction();
        var mandatory = new PublishOptions { Mandatory = true };
        if (OnRabbitMq)
        {
            await Assert.ThrowsAsync<NotSupportedException>(async () => await tx.PublishAsync(N("x"), "nowhere", new Order(1), mandatory));
        }
        else
        {
            await tx.PublishAsync(N("x"), "nowhere", new Order(1), mandatory);
            await Assert.ThrowsAsync<UnroutableMessageException>(async () => await tx.CommitAsync());
        }
    }

    [Test]
    public async Task PerMessageTtl_BehindALiveMessage()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        await broker.SendAsync(N("q"), new Order(1));
        await broker.SendAsync(N("q"), new Order(2), new PublishOptions { TimeToLive = TimeSpan.Zero });
        await using var dead = broker.Consume<Order>(N("dead"));
        if (OnRabbitMq)
        {
            Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.EqualTo(2), "RabbitMQ expires a message only when it reaches the head");
            Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 1 }));
        }

        var letter = await ReceiveAsync(dead);
        Assert.That((letter.Message.Id, letter.Properties.Deaths[0].Reason), Is.EqualTo((2, DeathRecord.Expired)));
        if (!OnRabbitMq)
        {
            Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 1 }), "the in-memory broker expired it behind the live message");
        }
    }

    [Test]
    public async Task HeadersExchange_AnIntegerArgument_AndADoubleHeader()
    {
        var broker = Build(b => Queue(b.AddExchange(N("h"), ExchangeType.Headers), "q").Bind(N("h"), N("q"), "", new Dictionary<string, object?> { ["n"] = 5 }));
        var asDouble = await broker.PublishAsync(N("h"), "", new Order(1), new PublishOptions { Headers = new Dictionary<string, object?> { ["n"] = 5.0 } });
        var asLong = await broker.PublishAsync(N("h"), "", new Order(2), new PublishOptions { Headers = new Dictionary<string, object?> { ["n"] = 5L } });
        Assert.That((asDouble.RoutedQueues, asLong.RoutedQueues), Is.EqualTo((OnRabbitMq ? 1 : 0, 1)), "RabbitMQ compares numbers by value across types; the in-memory exchange keeps doubles and integers apart");
        Assert.That(await ReceiveIdsAsync(broker, "q", OnRabbitMq ? 2 : 1), Is.EqualTo(OnRabbitMq ? new[] { 1, 2 } : new[] { 2 }));
    }
}
