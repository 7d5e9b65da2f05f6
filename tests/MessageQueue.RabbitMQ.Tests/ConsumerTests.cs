using System.Text;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, point 4, on the private node: a pull consumer receives in order within its prefetch; acks, nacks
/// and rejects reach the server with the in-memory broker's meanings; disposing requeues what was not settled; a body
/// that is not the consumer's type is dead-lettered.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class ConsumerTests
{
    public sealed record Order(int Id, string Sku);

    public sealed record Invoice(int Number);

    private readonly string _prefix = $"mqc-{Guid.NewGuid():N}"[..16];
    private IConnection _connection = null!;
    private RabbitMqPublisher _publisher = null!;

    private string Work => $"{_prefix}-work";

    private string Dead => $"{_prefix}-dead";

    [SetUp]
    public async Task DeclareAsync()
    {
        _connection = await RabbitMqNode.ConnectAsync();
        _publisher = new RabbitMqPublisher(_connection, new JsonMessageSerializer());
        await RabbitMqTopology.DeclareAsync(_connection,
        [
            new QueueItem(Dead, new QueueOptions(), RabbitMqQueueType.Classic),
            new QueueItem(Work, new QueueOptions { DeadLetterQueue = Dead }, RabbitMqQueueType.Classic),
        ]);
    }

    [TearDown]
    public async Task DeleteAsync()
    {
        if (_connection is null)
        {
            return;
        }

        await using (var channel = await _connection.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(Work);
            await channel.QueueDeleteAsync(Dead);
        }

        await _publisher.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private Task<PublishResult> SendAsync(string queue, object message, string id) =>
        _publisher.PublishAsync("", queue, message, new MessageProperties { MessageId = id, Timestamp = DateTimeOffset.UtcNow, MessageType = message.GetType().FullName }, mandatory: true, CancellationToken.None).AsTask();

    private Task<RabbitMqConsumer<TMessage>> ConsumeAsync<TMessage>(string queue, int prefetch = 32, AckMode ack = AckMode.Manual) =>
        RabbitMqConsumer<TMessage>.StartAsync(_connection, queue, new ConsumerOptions { Prefetch = prefetch, AckMode = ack }, new JsonMessageSerializer());

    [Test]
    public async Task Deliveries_ComeInOrder_WithTheirPropertiesAndBodies_AndAnAckRemovesThem()
    {
        for (var i = 0; i < 3; i++)
        {
            await SendAsync(Work, new Order(i, "lamp"), $"o-{i}");
        }

        await using var consumer = await ConsumeAsync<Order>(Work);
        var received = new List<Delivery<Order>>();
        for (var i = 0; i < 3; i++)
        {
            received.Add(await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(received.Select(d => d.Message.Id), Is.EqualTo(new[] { 0, 1, 2 }));
            Assert.That(received.Select(d => d.Properties.MessageId), Is.EqualTo(new[] { "o-0", "o-1", "o-2" }));
            Assert.That(received.Select(d => (d.Queue, d.Exchange, d.RoutingKey, d.DeliveryCount, d.Redelivered)), Is.All.EqualTo((Work, "", Work, 1, false)));
        }

        foreach (var d in received)
        {
            await d.AckAsync();
        }

        var again = await Assert.ThrowsAsync<InvalidOperationException>(async () => await received[0].AckAsync());
        Assert.That(again!.Message, Does.Contain("already acknowledged"));
        await consumer.DisposeAsync();
        Assert.That(await MessageCountAsync(Work), Is.Zero, "acked on the server");
    }

    [Test]
    public async Task ANackWithRequeue_RedeliversIt_AndARejectDeadLettersIt_WithRabbitMqsDeathRecord()
    {
        await SendAsync(Work, new Order(1, "a"), "n-1");
        await using var consumer = await ConsumeAsync<Order>(Work);
        var first = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        await first.NackAsync(requeue: true);
        var second = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That((second.Properties.MessageId, second.DeliveryCount, second.Redelivered), Is.EqualTo(("n-1", 2, true)));
        await second.RejectAsync("bad order");

        await using var dead = await ConsumeAsync<Order>(Dead);
        var deadLetter = await dead.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(deadLetter.Properties.MessageId, Is.EqualTo("n-1"));
            Assert.That(deadLetter.Properties.Deaths.Select(x => (x.Queue, x.Reason, x.Count)), Is.EqualTo(new[] { (Work, DeathRecord.Rejected, 1L) }));
        }

        var delayed = await Assert.ThrowsAsync<NotSupportedException>(async () => await deadLetter.NackAsync(requeue: true, delay: TimeSpan.FromSeconds(1)));
        Assert.That(delayed!.Message, Does.Contain("cannot delay"));
    }

    [Test]
    public async Task DisposingAConsumer_RequeuesWhatItHadNotSettled_AndPrefetchBoundsWhatItHolds()
    {
        for (var i = 0; i < 5; i++)
        {
            await SendAsync(Work, new Order(i, "a"), $"p-{i}");
        }

        var consumer = await ConsumeAsync<Order>(Work, prefetch: 2);
        var held = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        _ = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken); // the window (2) is full and unacked
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await MessageCountAsync(Work), Is.EqualTo(3), "two unacked in the window, three ready: the server pushes no more");
            Assert.That(consumer.TryReceive(out _), Is.False, "nothing past the prefetch in the consumer's buffer");
        }

        await consumer.DisposeAsync();
        var gone = await Assert.ThrowsAsync<InvalidOperationException>(async () => await held.AckAsync());
        Assert.That(gone!.Message, Does.Contain("was disposed"));

        await using var next = await ConsumeAsync<Order>(Work);
        var redelivered = await next.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That((redelivered.Message.Id, redelivered.Redelivered), Is.EqualTo((0, true)), "requeued at its place, marked redelivered");
    }

    [Test]
    public async Task ABodyThatIsNotTheConsumersType_IsDeadLettered_AndTheNextIsReceived()
    {
        await SendAsync(Work, new Invoice(9), "i-9");                          // a known type that is not an Order
        await using (var raw = await _connection.CreateChannelAsync())
        {
            await raw.BasicPublishAsync("", Work, mandatory: true, new BasicProperties { MessageId = "junk" }, Encoding.UTF8.GetBytes("not json"));
        }

        await SendAsync(Work, new Order(1, "a"), "o-1");
        await using var consumer = await ConsumeAsync<Order>(Work);
        var delivery = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That(delivery.Properties.MessageId, Is.EqualTo("o-1"));
        await delivery.AckAsync();

        await using var channel = await _connection.CreateChannelAsync();
        var ids = new List<string?>();
        for (var i = 0; i < 100 && ids.Count < 2; i++)
        {
            if (await channel.BasicGetAsync(Dead, autoAck: true) is { } got)
            {
                ids.Add(got.BasicProperties.MessageId);
                Assert.That(RabbitMqProperties.FromAmqp(got.BasicProperties).Deaths.Single().Reason, Is.EqualTo(DeathRecord.Rejected));
            }
            else
            {
                await Task.Delay(50);
            }
        }

        Assert.That(ids, Is.EqualTo(new[] { "i-9", "junk" }), "both rejected, so dead-lettered, in order");
    }

    [Test]
    public async Task AnAutoAckConsumer_CannotSettle_AndItsMessagesLeaveTheQueueOnDelivery()
    {
        await SendAsync(Work, new Order(1, "a"), "a-1");
        await using var consumer = await ConsumeAsync<Order>(Work, ack: AckMode.Auto);
        var delivery = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await delivery.AckAsync());
        await consumer.DisposeAsync();
        Assert.That(await MessageCountAsync(Work), Is.Zero);
    }

    [Test]
    public async Task ConsumingAQueueThatDoesNotExist_IsATopologyException()
    {
        var ex = await Assert.ThrowsAsync<TopologyException>(async () => await ConsumeAsync<Order>($"{_prefix}-missing"));
        Assert.That(ex!.Message, Does.Contain("does not exist"));
    }

    private async Task<uint> MessageCountAsync(string queue)
    {
        await using var channel = await _connection.CreateChannelAsync();
        return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
    }
}
