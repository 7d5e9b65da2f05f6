using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Publishing;

[TestFixture]
public sealed class PublishTests
{
    private static IMessageBroker Broker() => new MessageBrokerBuilder()
        .AddExchange("x", ExchangeType.Direct)
        .AddQueue("q")
        .Bind("x", "q", "k")
        .Build();

    [Test]
    [CancelAfter(10_000)]
    public async Task PublishAsync_Routed_ResultHasIdAndCountAndMessageIsInQueue()
    {
        await using var broker = Broker();
        var r = await broker.PublishAsync("x", "k", new Order(7));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(r.RoutedQueues, Is.EqualTo(1));
            Assert.That(r.IsRouted, Is.True);
            Assert.That(r.MessageId, Is.Not.Empty);
            Assert.That(d.Properties.MessageId, Is.EqualTo(r.MessageId), "lazily generated id is stable");
            Assert.That(d.Message, Is.EqualTo(new Order(7)));
            Assert.That(d.Exchange, Is.EqualTo("x"));
            Assert.That(d.RoutingKey, Is.EqualTo("k"));
            Assert.That(d.Properties.MessageType, Is.EqualTo(typeof(Order).FullName));
        });
    }

    [Test]
    public async Task PublishAsync_GivenProperties_AreDelivered()
    {
        await using var broker = Broker();
        var r = await broker.PublishAsync("x", "k", new Order(1), new PublishOptions
        {
            MessageId = "m-1",
            CorrelationId = "c-1",
            ReplyTo = "replies",
            ContentType = "application/json",
            Priority = 3,
            Headers = new Dictionary<string, object?> { ["tenant"] = "acme", ["n"] = 5, ["tags"] = new[] { "a", "b" } },
        });
        await using var consumer = broker.Consume<Order>("q");
        var p = (await consumer.ReceiveAsync()).Properties;
        Assert.Multiple(() =>
        {
            Assert.That(r.MessageId, Is.EqualTo("m-1"));
            Assert.That(p.MessageId, Is.EqualTo("m-1"));
            Assert.That(p.CorrelationId, Is.EqualTo("c-1"));
            Assert.That(p.ReplyTo, Is.EqualTo("replies"));
            Assert.That(p.ContentType, Is.EqualTo("application/json"));
            Assert.That(p.Priority, Is.EqualTo(3));
            Assert.That(p.Headers["tenant"], Is.EqualTo("acme"));
            Assert.That(p.Headers["n"], Is.EqualTo(5));
        });
    }

    [Test]
    public async Task PublishAsync_FanoutToSeveralQueues_SharesOneMessageId()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("f", ExchangeType.Fanout).AddQueue("a").AddQueue("b").Bind("f", "a").Bind("f", "b").Build();
        var r = await broker.PublishAsync("f", "", new Order(1));
        await using var ca = broker.Consume<Order>("a");
        await using var cb = broker.Consume<Order>("b");
        var da = await ca.ReceiveAsync();
        var db = await cb.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(da.Properties.MessageId, Is.EqualTo(r.MessageId));
            Assert.That(db.Properties.MessageId, Is.EqualTo(r.MessageId));
            Assert.That(da.Message, Is.SameAs(db.Message), "in memory the body is handed over by reference");
        });
    }

    [Test]
    public async Task PublishAsync_MandatoryUnroutable_ThrowsAndEnqueuesNothing()
    {
        await using var broker = Broker();
        var ex = await Assert.ThrowsAsync<UnroutableMessageException>(async () =>
            await broker.PublishAsync("x", "other", new Order(1), new PublishOptions { Mandatory = true }));
        Assert.Multiple(() =>
        {
            Assert.That(ex!.Exchange, Is.EqualTo("x"));
            Assert.That(ex.RoutingKey, Is.EqualTo("other"));
            Assert.That(ex.Message, Does.Contain("'x'").And.Contain("'other'"));
            Assert.That(broker.Management.GetQueueInfo("q").Published, Is.Zero);
        });
    }

    [Test]
    public async Task PublishAsync_NotMandatoryUnroutable_ReturnsZeroQueues()
    {
        await using var broker = Broker();
        var r = await broker.PublishAsync("x", "other", new Order(1));
        Assert.Multiple(() =>
        {
            Assert.That(r.RoutedQueues, Is.Zero);
            Assert.That(r.IsRouted, Is.False);
            Assert.That(r.MessageId, Is.Not.Empty);
        });
    }

    [Test]
    public async Task PublishAsync_ReservedHeaders_AreReplacedNotTrusted()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.PublishAsync("", "q", new Order(1), new PublishOptions
        {
            Headers = new Dictionary<string, object?>
            {
                ["x-death"] = "forged",
                ["x-first-death-queue"] = "forged",
                ["x-last-death-reason"] = "forged",
                ["x-exception-type"] = "forged",
                ["x-rejection-reason"] = "forged",
                ["mine"] = "kept",
            },
        });
        await using var c = broker.Consume<Order>("q");
        var headers = (await c.ReceiveAsync()).Properties.Headers;
        Assert.That(headers.Keys, Is.EquivalentTo(new[] { "mine" }));
    }

    [Test]
    public async Task PublishAsync_BadInput_ThrowsNamingTheProblemAndEnqueuesNothing()
    {
        await using var broker = Broker();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => broker.PublishAsync<Order>("x", "k", null!), Throws.ArgumentNullException);
            Assert.That(() => broker.PublishAsync(null!, "k", new Order(1)), Throws.ArgumentNullException);
            Assert.That(() => broker.PublishAsync("x", null!, new Order(1)), Throws.ArgumentNullException);
            Assert.That(() => broker.PublishAsync("x", new string('k', 256), new Order(1)), Throws.ArgumentException.With.Message.Contains("256"));
            Assert.That(() => broker.PublishAsync("missing", "k", new Order(1)), Throws.TypeOf<TopologyException>().With.Message.Contains("'missing'"));
            Assert.That(() => broker.PublishAsync("x", "k", new Order(1), new PublishOptions { Headers = new Dictionary<string, object?> { ["bad"] = new object() } }),
                Throws.ArgumentException.With.Message.Contains("'bad'"));
            Assert.That(() => broker.PublishAsync("x", "k", new Order(1), new PublishOptions { MessageId = "" }), Throws.ArgumentException);
            await Assert.ThatAsync(async () => await broker.PublishAsync("x", "k", new Order(1), cancellationToken: new CancellationToken(true)),
                Throws.InstanceOf<OperationCanceledException>());
        }

        Assert.That(broker.Management.GetQueueInfo("q").Published, Is.Zero);
    }

    [Test]
    public async Task PublishAsync_AfterDispose_ThrowsObjectDisposed()
    {
        var broker = Broker();
        await broker.DisposeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(() => broker.PublishAsync("x", "k", new Order(1)), Throws.TypeOf<ObjectDisposedException>());
            Assert.That(() => broker.SendAsync("q", new Order(1)), Throws.TypeOf<ObjectDisposedException>());
            Assert.That(() => broker.Consume<Order>("q"), Throws.TypeOf<ObjectDisposedException>());
        });
    }

    [Test]
    public async Task SendAsync_GoesThroughDefaultExchange()
    {
        await using var broker = Broker();
        var r = await broker.SendAsync("q", new Order(3));
        await using var c = broker.Consume<Order>("q");
        var d = await c.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(r.RoutedQueues, Is.EqualTo(1));
            Assert.That(d.Exchange, Is.Empty);
            Assert.That(d.RoutingKey, Is.EqualTo("q"));
        });
    }

    [Test]
    public async Task SendAsync_ValueTypeBody_Works()
    {
        await using var broker = Broker();
        await broker.SendAsync("q", 42);
        await using var c = broker.Consume<int>("q");
        Assert.That((await c.ReceiveAsync()).Message, Is.EqualTo(42));
    }
}
