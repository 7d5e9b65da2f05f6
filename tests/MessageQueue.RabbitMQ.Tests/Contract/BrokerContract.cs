namespace MessageQueue.RabbitMQ.Tests.Contract;

/// <summary>
/// The queue contract on both backends (issue 18, point 6): the engine's queue contract (<c>QueueContract</c> in the
/// SQLite tests: FIFO, requeue, settles, dead letters with history and reason, TTL, length limits, priorities,
/// redrive, purge) and the rest of the public API (routing, properties, subscriptions with retries, transactions,
/// management), written once against <see cref="IMessageBroker"/> and run on the in-memory broker
/// (<see cref="InMemoryBrokerContract"/>) and on the RabbitMQ transport against a real node
/// (<see cref="RabbitMqBrokerContract"/>). Where RabbitMQ behaves differently, the test is not skipped: it asserts
/// each backend's documented behaviour, and <see cref="Exclusions"/> lists those tests with the reason (the README's
/// RabbitMQ differences table says the same).
/// </summary>
public abstract partial class BrokerContract : BackendFixture
{
    /// <summary>The tests whose assertion differs on RabbitMQ, and why.</summary>
    public static readonly IReadOnlyDictionary<string, string> Exclusions = new Dictionary<string, string>
    {
        [nameof(Peek)] = "AMQP reads a message only by taking it: the transport peeks by taking and returning, so what it read is marked redelivered (and counts a delivery on a quorum queue).",
        [nameof(QueueInfo_Counters)] = "AMQP tells a queue's ready messages and consumers only; the other counters need RabbitMQ's management API (RabbitMqOptions.ManagementUrl, sampled, so not in this contract) and are zero without it.",
        [nameof(DeliveryCount_PastTwo)] = "A classic queue says only whether a message was redelivered: DeliveryCount is 2 from the second delivery on (a quorum queue counts exactly).",
        [nameof(PerMessageTtl_BehindALiveMessage)] = "RabbitMQ expires a message with its own TTL only when it reaches the head of the queue; the in-memory broker expires it where it is.",
        [nameof(HeadersExchange_AnIntegerArgument_AndADoubleHeader)] = "RabbitMQ's headers exchange compares numbers by value whatever their type (5 matches 5.0); the in-memory exchange, as its README section says, never matches a double to an integer.",
        [nameof(DelayedPublish_WithATimeToLive)] = "A delayed message waits in the transport's delay queues, where its expiration would run: the transport refuses a TimeToLive on a delayed publish.",
        [nameof(Transaction_Mandatory)] = "RabbitMQ reports an unroutable message only after the whole transaction is committed: the transport refuses Mandatory in a transaction.",
    };

    public sealed record Order(int Id);

    public sealed record Invoice(int Number);

    protected MessageBrokerBuilder Queue(MessageBrokerBuilder b, string name, Action<QueueOptions>? configure = null) => b.AddQueue(N(name), configure);

    protected async Task SendAsync(IMessageBroker broker, string queue, int from, int count, PublishOptions? options = null)
    {
        for (var id = from; id < from + count; id++)
        {
            await broker.SendAsync(N(queue), new Order(id), options);
        }
    }

    protected async Task<List<int>> ReceiveIdsAsync(IMessageBroker broker, string queue, int count)
    {
        await using var consumer = broker.Consume<Order>(N(queue));
        return [.. (await ReceiveAndAckAsync(consumer, count)).Select(o => o.Id)];
    }

    [Test]
    public async Task Fifo_DeliversInPublishOrder()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 20);
        Assert.That(await ReceiveIdsAsync(broker, "q", 20), Is.EqualTo(Enumerable.Range(1, 20)));
    }

    [Test]
    public async Task Nack_Requeue_GoesBackToItsPlace_Redelivered()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 3);
        await using var consumer = broker.Consume<Order>(N("q"), o => o.Prefetch = 1);
        var first = await ReceiveAsync(consumer);
        Assert.That((first.Redelivered, first.DeliveryCount), Is.EqualTo((false, 1)));
        await first.NackAsync(requeue: true);
        var again = await ReceiveAsync(consumer);
        Assert.Multiple(() =>
        {
            Assert.That(again.Message.Id, Is.EqualTo(1), "a requeued message goes back to its place, ahead of later ones");
            Assert.That(again.Redelivered, Is.True);
            Assert.That(again.DeliveryCount, Is.EqualTo(2));
        });
        await again.AckAsync();
        Assert.That((await ReceiveAndAckAsync(consumer, 2)).Select(o => o.Id), Is.EqualTo(new[] { 2, 3 }));
    }

    [Test]
    public async Task Ack_RemovesTheMessage_AndASecondSettleIsAnError()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>(N("q"));
        var d = await ReceiveAsync(consumer);
        await d.AckAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.AckAsync());
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.NackAsync());
        Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero);
    }

    [Test]
    public async Task NackAndReject_DeadLetterWithHistoryAndReason()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        await SendAsync(broker, "q", 1, 2);
        await using var consumer = broker.Consume<Order>(N("q"));
        await (await ReceiveAsync(consumer)).NackAsync(requeue: false);
        await (await ReceiveAsync(consumer)).RejectAsync("not valid");

        await using var dead = broker.Consume<Order>(N("dead"));
        var letters = new[] { await ReceiveAsync(dead), await ReceiveAsync(dead) }.OrderBy(d => d.Message.Id).ToArray();
        var (first, second) = (letters[0], letters[1]); // the two deaths are separate: RabbitMQ does not order them
        Assert.Multiple(() =>
        {
            Assert.That((first.Message.Id, second.Message.Id), Is.EqualTo((1, 2)));
            foreach (var d in new[] { first, second })
            {
                var death = d.Properties.Deaths[0];
                Assert.That((death.Queue, death.Reason, death.Count, death.Exchange), Is.EqualTo((N("q"), DeathRecord.Rejected, 1L, "")));
                Assert.That(death.RoutingKeys, Is.EqualTo(new[] { N("q") }));
                Assert.That(d.Properties.Headers["x-first-death-queue"], Is.EqualTo(N("q")));
                Assert.That(d.Properties.Headers["x-first-death-reason"], Is.EqualTo(DeathRecord.Rejected));
            }

            Assert.That(first.Properties.Headers.ContainsKey("x-rejection-reason"), Is.False);
            Assert.That(second.Properties.Headers["x-rejection-reason"], Is.EqualTo("not valid"), "a reject's reason travels with the dead letter");
        });
    }

    [Test]
    public async Task ABodyOfAnotherType_IsDeadLetteredWithTheReason_AndTheNextMessageDelivered()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        await broker.SendAsync(N("q"), new Invoice(7));
        await broker.SendAsync(N("q"), new Order(1));
        await using var consumer = broker.Consume<Order>(N("q"));
        var d = await ReceiveAsync(consumer);
        Assert.That(d.Message.Id, Is.EqualTo(1));
        await d.AckAsync();

        await using var dead = broker.Consume<Invoice>(N("dead"));
        var letter = await ReceiveAsync(dead);
        Assert.Multiple(() =>
        {
            Assert.That(letter.Message.Number, Is.EqualTo(7));
            Assert.That(letter.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Rejected));
            Assert.That(letter.Properties.Headers["x-rejection-reason"], Is.EqualTo(
                $"The message body is a '{typeof(Invoice).FullName}', which is not a '{typeof(Order).FullName}' as the consumer expects; it was dead-lettered instead of delivered."));
        });
    }

    [Test]
    public async Task Ttl_ExpiresIntoTheDeadLetterQueue_AsExpired()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.DeadLetterQueue = N("dead"); o.MessageTtl = TimeSpan.FromMilliseconds(50); }));
        await SendAsync(broker, "q", 1, 2);
        await using var dead = broker.Consume<Order>(N("dead"));
        var first = await ReceiveAsync(dead);
        var second = await ReceiveAsync(dead);
        Assert.Multiple(() =>
        {
            Assert.That((first.Message.Id, second.Message.Id), Is.EqualTo((1, 2)));
            Assert.That(first.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Expired));
            Assert.That(first.Properties.Deaths[0].Queue, Is.EqualTo(N("q")));
        });
    }

    [Test]
    public async Task PerMessageTtl_ExpiresOnlyThatMessage_AndRecordsTheOriginalExpiration()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        await broker.SendAsync(N("q"), new Order(1), new PublishOptions { TimeToLive = TimeSpan.FromMilliseconds(50) });
        await broker.SendAsync(N("q"), new Order(2));
        await using var dead = broker.Consume<Order>(N("dead"));
        var letter = await ReceiveAsync(dead);
        Assert.Multiple(() =>
        {
            Assert.That(letter.Message.Id, Is.EqualTo(1));
            Assert.That(letter.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Expired));
            Assert.That(letter.Properties.Deaths[0].OriginalExpiration, Is.EqualTo(TimeSpan.FromMilliseconds(50)));
            Assert.That(letter.Properties.Expiration, Is.Null, "a dead letter has no expiration of its own");
        });
        Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 2 }));
    }

    [Test]
    public async Task MaxLength_RejectPublish_RefusesTheNewest()
    {
        var broker = Build(b => Queue(b, "q", o => { o.MaxLength = 3; o.Overflow = OverflowPolicy.RejectPublish; }));
        await SendAsync(broker, "q", 1, 3);
        await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync(N("q"), new Order(4)));
        Assert.That(await ReceiveIdsAsync(broker, "q", 3), Is.EqualTo(new[] { 1, 2, 3 }));
    }

    [Test]
    public async Task MaxLength_DropHead_DeadLettersTheOldestAsMaxlen()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => { o.MaxLength = 3; o.DeadLetterQueue = N("dead"); }));
        await SendAsync(broker, "q", 1, 5);
        await using var dead = broker.Consume<Order>(N("dead"));
        var first = await ReceiveAsync(dead);
        var second = await ReceiveAsync(dead);
        Assert.Multiple(() =>
        {
            Assert.That((first.Message.Id, second.Message.Id), Is.EqualTo((1, 2)));
            Assert.That(first.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.MaxLength));
        });
        Assert.That(await ReceiveIdsAsync(broker, "q", 3), Is.EqualTo(new[] { 3, 4, 5 }));
    }

    [Test]
    public async Task Priorities_HigherFirst_FifoWithinAPriority()
    {
        var broker = Build(b => Queue(b, "q", o => o.MaxPriority = 9));
        byte[] priorities = [1, 5, 3, 9, 5, 0];
        for (var i = 0; i < priorities.Length; i++)
        {
            await broker.SendAsync(N("q"), new Order(i), new PublishOptions { Priority = priorities[i] });
        }

        Assert.That(await ReceiveIdsAsync(broker, "q", 6), Is.EqualTo(new[] { 3, 1, 4, 2, 0, 5 }));
    }

    [Test]
    public async Task DisposingAConsumer_ReturnsItsUnackedDeliveries_Redelivered()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 2);
        await using (var consumer = broker.Consume<Order>(N("q"), o => o.Prefetch = 1))
        {
            Assert.That((await ReceiveAsync(consumer)).Message.Id, Is.EqualTo(1));
        }

        await using var again = broker.Consume<Order>(N("q"));
        var d = await ReceiveAsync(again);
        Assert.That((d.Message.Id, d.Redelivered), Is.EqualTo((1, true)));
    }

    [Test]
    public async Task AutoAck_DeliveriesNeedNoSettle_AndCannotBeSettled()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 2);
        await using (var consumer = broker.Consume<Order>(N("q"), o => o.AckMode = AckMode.Auto))
        {
            var d = await ReceiveAsync(consumer);
            Assert.That(d.Message.Id, Is.EqualTo(1));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await d.AckAsync());
        }

        Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 2 }), "the auto-acked message is gone; the one never handed out is still there");
    }
}

/// <summary>The contract on the in-memory broker.</summary>
public sealed class InMemoryBrokerContract : BrokerContract
{
    protected override bool OnRabbitMq => false;
}

/// <summary>The contract on the RabbitMQ transport, against the private node.</summary>
public sealed class RabbitMqBrokerContract : BrokerContract
{
    protected override bool OnRabbitMq => true;
}
