namespace MessageQueue.RabbitMQ.Tests.Contract;

/// <summary>The contract's routing, properties, subscriptions, transactions and management.</summary>
public abstract partial class BrokerContract
{
    [Test]
    public async Task Mandatory_NoRoute_IsUnroutable_OtherwiseRoutedToNone()
    {
        var broker = Build(b => b.AddExchange(N("x"), ExchangeType.Direct));
        await Assert.ThrowsAsync<UnroutableMessageException>(async () => await broker.PublishAsync(N("x"), "nowhere", new Order(1), new PublishOptions { Mandatory = true }));
        var result = await broker.PublishAsync(N("x"), "nowhere", new Order(1));
        Assert.That(result.RoutedQueues, Is.Zero);
    }

    [Test]
    public async Task UnknownExchangeOrQueue_IsATopologyException()
    {
        var broker = Build(b => Queue(b, "q"));
        await Assert.ThrowsAsync<TopologyException>(async () => await broker.PublishAsync(N("missing"), "k", new Order(1)));
        await Assert.ThrowsAsync<TopologyException>(async () => await broker.SendAsync(N("missing"), new Order(1)));
        Assert.Throws<TopologyException>(() => broker.Consume<Order>(N("missing")));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await broker.SendAsync<Order>(N("q"), null!));
        Assert.That((await broker.SendAsync(N("q"), new Order(1))).RoutedQueues, Is.EqualTo(1), "the broker still works");
    }

    [Test]
    public async Task AlternateExchange_TakesWhatTheExchangeCannotRoute()
    {
        var broker = Build(b => Queue(b, "unrouted")
            .AddExchange(N("ae"), ExchangeType.Fanout)
            .AddExchange(N("x"), ExchangeType.Direct, o => o.AlternateExchange = N("ae"))
            .Bind(N("ae"), N("unrouted")));
        await broker.PublishAsync(N("x"), "nowhere", new Order(5), new PublishOptions { Mandatory = true });
        Assert.That(await ReceiveIdsAsync(broker, "unrouted", 1), Is.EqualTo(new[] { 5 }));
    }

    [Test]
    public async Task ExchangeToExchangeBinding_Routes()
    {
        var broker = Build(b => Queue(b, "q")
            .AddExchange(N("front"), ExchangeType.Topic)
            .AddExchange(N("back"), ExchangeType.Direct)
            .BindExchange(N("front"), N("back"), "orders.*")
            .Bind(N("back"), N("q"), "orders.eu"));
        await broker.PublishAsync(N("front"), "orders.eu", new Order(1));
        await broker.PublishAsync(N("front"), "orders.us", new Order(2));
        await broker.PublishAsync(N("front"), "orders.eu", new Order(3));
        Assert.That(await ReceiveIdsAsync(broker, "q", 2), Is.EqualTo(new[] { 1, 3 }));
    }

    [Test]
    public async Task Properties_TravelBothWays()
    {
        var broker = Build(b => Queue(b, "q", o => o.MaxPriority = 5));
        var guid = Guid.NewGuid();
        var before = DateTimeOffset.UtcNow;
        var headers = new Dictionary<string, object?>
        {
            ["text"] = "hello", ["int"] = 5, ["long"] = 6L, ["flag"] = true, ["double"] = 1.5, ["guid"] = guid,
            ["byte"] = (byte)7, ["decimal"] = 2.5m, ["bytes"] = new byte[] { 1, 2 }, ["none"] = null,
        };
        await broker.SendAsync(N("q"), new Order(1), new PublishOptions
        {
            MessageId = "m-1", CorrelationId = "c-1", ReplyTo = "replies", ContentType = "application/json", Priority = 3, Headers = headers,
        });
        await using var consumer = broker.Consume<Order>(N("q"));
        var d = await ReceiveAsync(consumer);
        var p = d.Properties;
        Assert.Multiple(() =>
        {
            Assert.That((p.MessageId, p.CorrelationId, p.ReplyTo, p.ContentType, p.Priority), Is.EqualTo(("m-1", "c-1", "replies", "application/json", (byte)3)));
            Assert.That(p.MessageType, Is.EqualTo(MessageTypeNames.NameOf(typeof(Order))));
            Assert.That(p.Persistent, Is.True);
            Assert.That(p.Timestamp, Is.InRange(before.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1)), "RabbitMQ keeps whole seconds");
            foreach (var (name, value) in headers)
            {
                Assert.That(p.Headers[name], Is.EqualTo(value), name);
                Assert.That(p.Headers[name]?.GetType(), Is.EqualTo(value?.GetType()), $"{name} keeps its type");
            }

            Assert.That((d.Exchange, d.RoutingKey, d.Queue), Is.EqualTo(("", N("q"), N("q"))));
        });
    }

    [Test]
    public async Task Subscription_AcksOnReturn()
    {
        var broker = Build(b => Queue(b, "q"));
        var seen = new List<int>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await SendAsync(broker, "q", 1, 3);
        await using (broker.Subscribe<Order>(N("q"), (d, _) =>
        {
            seen.Add(d.Message.Id);
            if (seen.Count == 3)
            {
                done.TrySetResult();
            }

            return ValueTask.CompletedTask;
        }))
        {
            await done.Task.WaitAsync(Patience);
        }

        Assert.That(seen, Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero, "returning acked each message");
    }

    [Test]
    public async Task Subscription_RetriesByThePolicy_ThenDeadLettersWithTheException()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        var counts = new List<int>();
        await SendAsync(broker, "q", 1, 1);
        await using (broker.Subscribe<Order>(N("q"), (d, _) =>
        {
            lock (counts)
            {
                counts.Add(d.DeliveryCount);
            }

            throw new InvalidOperationException($"cannot bill order {d.Message.Id}");
        }, o => o.Retry = RetryPolicy.Immediate(2)))
        {
            await using var dead = broker.Consume<Order>(N("dead"));
            var letter = await ReceiveAsync(dead);
            Assert.Multiple(() =>
            {
                Assert.That(letter.Message.Id, Is.EqualTo(1));
                Assert.That(letter.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Rejected));
                Assert.That(letter.Properties.Deaths[0].Queue, Is.EqualTo(N("q")));
                Assert.That(letter.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(InvalidOperationException).FullName));
                Assert.That(letter.Properties.Headers["x-exception-message"], Is.EqualTo("cannot bill order 1"));
                Assert.That((string?)letter.Properties.Headers["x-exception-stack"], Does.Contain(nameof(Subscription_RetriesByThePolicy_ThenDeadLettersWithTheException)));
            });
        }

        Assert.That(counts, Is.EqualTo(new[] { 1, 2, 3 }), "the first delivery and two retries, each counted");
    }

    [Test]
    public async Task Subscription_DeadLetterOn_SkipsTheRetries()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        var calls = 0;
        await SendAsync(broker, "q", 1, 1);
        await using (broker.Subscribe<Order>(N("q"), (_, _) =>
        {
            Interlocked.Increment(ref calls);
            throw new ArgumentException("bad order");
        }, o => o.Retry = RetryPolicy.Immediate(5).DeadLetterOn<ArgumentException>()))
        {
            await using var dead = broker.Consume<Order>(N("dead"));
            var letter = await ReceiveAsync(dead);
            Assert.That(letter.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(ArgumentException).FullName));
        }

        Assert.That(calls, Is.EqualTo(1));
    }

    [Test]
    public async Task Transaction_CommitsAllInOrder_OrNoneWhenDisposed()
    {
        var broker = Build(b => Queue(b, "q").AddExchange(N("x"), ExchangeType.Direct).Bind(N("x"), N("q"), "k"));
        await using (var discarded = broker.BeginTransaction())
        {
            await discarded.SendAsync(N("q"), new Order(99));
            Assert.That(discarded.Count, Is.EqualTo(1));
        }

        await using (var tx = broker.BeginTransaction())
        {
            await tx.SendAsync(N("q"), new Order(1));
            await tx.PublishAsync(N("x"), "k", new Order(2));
            Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero, "nothing is routed before the commit");
            var results = await tx.CommitAsync();
            Assert.That(results, Has.Count.EqualTo(2));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await tx.CommitAsync());
        }

        Assert.That(await ReceiveIdsAsync(broker, "q", 2), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero, "the disposed transaction published nothing");
    }

    [Test]
    public async Task Transaction_RefusesAnUnknownQueueWhenStaged()
    {
        var broker = Build(b => Queue(b, "q"));
        await using var tx = broker.BeginTransaction();
        await Assert.ThrowsAsync<TopologyException>(async () => await tx.SendAsync(N("missing"), new Order(1)));
        Assert.That(tx.Count, Is.Zero);
    }

    [Test]
    public async Task PublishBatch_PublishesAll()
    {
        var broker = Build(b => Queue(b, "q").AddExchange(N("x"), ExchangeType.Fanout).Bind(N("x"), N("q")));
        var results = await broker.PublishBatchAsync(N("x"), "", Enumerable.Range(1, 5).Select(i => new Order(i)), o => new PublishOptions { MessageId = $"b{o.Id}" });
        Assert.That(results.Select(r => r.MessageId), Is.EqualTo(new[] { "b1", "b2", "b3", "b4", "b5" }));
        Assert.That(await ReceiveIdsAsync(broker, "q", 5), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
    }

    [Test]
    public async Task Management_DeclaresBindsUnbindsAndDeletes()
    {
        var broker = Build(_ => { });
        var m = broker.Management;
        await m.DeclareExchangeAsync(N("x"), ExchangeType.Topic);
        await m.DeclareQueueAsync(N("q"), o => o.MaxLength = 10);
        await m.DeclareQueueAsync(N("q"), o => o.MaxLength = 10); // the same again is fine
        await m.BindQueueAsync(N("x"), N("q"), "a.*");
        Assert.That(m.GetQueueNames(), Does.Contain(N("q")));
        await broker.PublishAsync(N("x"), "a.b", new Order(1));
        Assert.That(m.GetQueueInfo(N("q")).Ready, Is.EqualTo(1));
        Assert.That(await m.UnbindQueueAsync(N("x"), N("q"), "a.*"), Is.True);
        Assert.That((await broker.PublishAsync(N("x"), "a.b", new Order(2))).RoutedQueues, Is.Zero);
        await Assert.ThrowsAsync<TopologyException>(async () => await m.DeclareQueueAsync(N("q"), o => o.MaxLength = 11), "a different declaration of an existing queue");
        Assert.That(await m.DeleteQueueAsync(N("q")), Is.True);
        Assert.That(await m.DeleteQueueAsync(N("q")), Is.False);
        Assert.That(await m.DeleteExchangeAsync(N("x")), Is.True);
        Assert.That(await m.DeleteExchangeAsync(N("x")), Is.False);
        Assert.Throws<TopologyException>(() => m.GetQueueInfo(N("q")));
    }

    [Test]
    public async Task Purge_RemovesReadyMessages()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 10);
        Assert.That(await broker.Management.PurgeAsync(N("q")), Is.EqualTo(10));
        Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero);
    }

    [Test]
    public async Task Redrive_MovesDeadLettersBackToTheirQueue_WithACleanDeliveryCount()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        await SendAsync(broker, "q", 1, 3);
        await using (var consumer = broker.Consume<Order>(N("q")))
        {
            for (var i = 0; i < 3; i++)
            {
                await (await ReceiveAsync(consumer)).RejectAsync("bad");
            }
        }

        Assert.That(await broker.Management.RedriveAsync(N("dead")), Is.EqualTo(3));
        await using var again = broker.Consume<Order>(N("q"));
        var first = await ReceiveAsync(again);
        Assert.Multiple(() =>
        {
            Assert.That((first.Message.Id, first.Redelivered), Is.EqualTo((1, false)));
            Assert.That(first.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Rejected), "the history is kept");
        });
        await first.AckAsync();
        Assert.That((await ReceiveAndAckAsync(again, 2)).Select(o => o.Id), Is.EqualTo(new[] { 2, 3 }));
        Assert.That(broker.Management.GetQueueInfo(N("dead")).Ready, Is.Zero);
    }
}
