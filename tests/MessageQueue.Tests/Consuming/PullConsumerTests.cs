using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class PullConsumerTests
{
    private static IMessageBroker Broker(Action<QueueOptions>? q = null) =>
        new MessageBrokerBuilder().AddQueue("q", q).AddQueue("dlq").Build();

    [Test]
    public async Task ReceiveAsync_WaitsForPublish()
    {
        await using var broker = Broker();
        await using var consumer = broker.Consume<Order>("q");
        var pending = consumer.ReceiveAsync().AsTask();
        Assert.That(pending.IsCompleted, Is.False);
        await broker.SendAsync("q", new Order(1));
        var d = await pending.WithSafety();
        Assert.Multiple(() =>
        {
            Assert.That(d.Message.Id, Is.EqualTo(1));
            Assert.That(d.DeliveryCount, Is.EqualTo(1));
            Assert.That(d.Redelivered, Is.False);
            Assert.That(d.Queue, Is.EqualTo("q"));
        });
    }

    [Test]
    public async Task ReceiveAsync_Cancelled_Throws()
    {
        await using var broker = Broker();
        await using var consumer = broker.Consume<Order>("q");
        using var cts = new CancellationTokenSource();
        var pending = consumer.ReceiveAsync(cts.Token).AsTask();
        await cts.CancelAsync();
        Assert.That(async () => await pending, Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public async Task TryReceive_ReturnsFalseWhenEmpty_TrueWhenWaiting()
    {
        await using var broker = Broker();
        await using var consumer = broker.Consume<Order>("q");
        Assert.That(consumer.TryReceive(out _), Is.False);
        await broker.SendAsync("q", new Order(9));
        Assert.That(consumer.TryReceive(out var d), Is.True);
        Assert.That(d.Message.Id, Is.EqualTo(9));
    }

    [Test]
    public async Task Receive_IsFifo()
    {
        await using var broker = Broker();
        for (var i = 0; i < 100; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 7);
        var seen = new List<int>();
        for (var i = 0; i < 100; i++)
        {
            var d = await consumer.ReceiveAsync();
            seen.Add(d.Message.Id);
            await d.AckAsync();
        }

        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 100)));
    }

    [Test]
    public async Task Prefetch_LimitsUnackedDeliveries()
    {
        await using var broker = Broker();
        for (var i = 0; i < 10; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 3);
        var held = new List<Delivery<Order>>();
        while (consumer.TryReceive(out var d))
        {
            held.Add(d);
        }

        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(held, Has.Count.EqualTo(3));
            Assert.That(info.Unacked, Is.EqualTo(3));
            Assert.That(info.Ready, Is.EqualTo(7));
        });

        // Acks free the window; it refills once half of it is free.
        foreach (var d in held)
        {
            await d.AckAsync();
        }

        Assert.That(consumer.TryReceive(out var next), Is.True);
        Assert.That(next.Message.Id, Is.EqualTo(3));
    }

    [Test]
    public async Task ReceiveWhileWindowFull_GetsAMessagePublishedAfterTheAck()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        await broker.SendAsync("q", new Order(1));
        var first = await consumer.ReceiveAsync();
        var second = consumer.ReceiveAsync().AsTask(); // the window is full: this one waits for room and a message
        await first.AckAsync();
        await broker.SendAsync("q", new Order(2));
        Assert.That((await second.WithSafety()).Message.Id, Is.EqualTo(2));
    }

    [Test]
    public async Task AutoAck_AcksOnDelivery_AndSettlingThrows()
    {
        await using var broker = Broker();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q", o => o.AckMode = AckMode.Auto);
        var d = await consumer.ReceiveAsync();
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Acked, Is.EqualTo(1));
            Assert.That(info.Unacked, Is.Zero);
            Assert.That(() => d.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("AckMode.Auto"));
        });
    }

    [Test]
    public async Task ReadAllAsync_YieldsUntilDisposed()
    {
        await using var broker = Broker();
        var consumer = broker.Consume<Order>("q");
        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        var ids = new List<int>();
        await foreach (var d in consumer.ReadAllAsync())
        {
            ids.Add(d.Message.Id);
            await d.AckAsync();
            if (ids.Count == 5)
            {
                await consumer.DisposeAsync();
            }
        }

        Assert.That(ids, Is.EqualTo(new[] { 0, 1, 2, 3, 4 }));
    }

    [Test]
    public async Task Receive_AfterDispose_ThrowsObjectDisposed()
    {
        await using var broker = Broker();
        var consumer = broker.Consume<Order>("q");
        await consumer.DisposeAsync();
        Assert.That(() => consumer.ReceiveAsync(), Throws.TypeOf<ObjectDisposedException>());
        Assert.That(() => consumer.TryReceive(out _), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public async Task Consume_WrongType_DeadLettersWithReasonAndDeliversTheRest()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dlq").AddQueue("q", o => o.DeadLetterQueue = "dlq").Build();
        await broker.SendAsync("q", new Invoice(1));
        await broker.SendAsync("q", new Order(2));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync();
        await d.AckAsync();

        await using var dead = broker.Consume<Invoice>("dlq");
        var dl = await dead.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(d.Message.Id, Is.EqualTo(2));
            Assert.That(dl.Message.Number, Is.EqualTo(1));
            Assert.That(dl.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Rejected));
            Assert.That((string)dl.Properties.Headers["x-rejection-reason"]!, Does.Contain(typeof(Invoice).FullName).And.Contain(typeof(Order).FullName));
        });
    }
}
