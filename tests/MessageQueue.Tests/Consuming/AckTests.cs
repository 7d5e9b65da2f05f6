using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class AckTests
{
    [Test]
    public async Task NackRequeue_ReturnsToItsPlaceAheadOfLaterMessages()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        for (var i = 1; i <= 5; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 3);
        var held = new[] { await consumer.ReceiveAsync(), await consumer.ReceiveAsync(), await consumer.ReceiveAsync() };
        await held[2].NackAsync(requeue: true);
        await held[0].NackAsync(requeue: true);   // frees half the window: 1 and 3 come back, in queue order
        await held[1].AckAsync();

        var order = new List<(int Id, int Count, bool Redelivered)>();
        for (var i = 0; i < 4; i++)
        {
            var d = await consumer.ReceiveAsync();
            order.Add((d.Message.Id, d.DeliveryCount, d.Redelivered));
            await d.AckAsync();
        }

        Assert.That(order, Is.EqualTo(new[] { (1, 2, true), (3, 2, true), (4, 1, false), (5, 1, false) }));
        Assert.That(broker.Management.GetQueueInfo("q").Redelivered, Is.EqualTo(2));
    }

    [Test]
    public async Task ReturnedMessages_KeepQueueOrder()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        for (var i = 1; i <= 6; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        var consumer = broker.Consume<Order>("q", o => o.Prefetch = 4);
        await consumer.ReceiveAsync();
        await consumer.ReceiveAsync();
        var third = await consumer.ReceiveAsync();
        await third.AckAsync();
        await consumer.DisposeAsync();

        var peeked = await broker.Management.PeekAsync("q");
        Assert.That(peeked.Select(p => ((Order)p.Body).Id), Is.EqualTo(new[] { 1, 2, 4, 5, 6 }));
        Assert.That(peeked.Select(p => p.DeliveryCount), Is.EqualTo(new[] { 1, 1, 0, 0, 0 }));
    }

    [Test]
    public async Task AckTwice_Throws_SayingWhy()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync();
        await d.AckAsync();
        Assert.Multiple(() =>
        {
            Assert.That(() => d.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("already acknowledged"));
            Assert.That(() => d.NackAsync(), Throws.InvalidOperationException.With.Message.Contains("already acknowledged"));
            Assert.That(() => d.RejectAsync(), Throws.InvalidOperationException.With.Message.Contains("already acknowledged"));
            Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.EqualTo(1));
        });
    }

    [Test]
    public void DefaultDelivery_Throws()
    {
        var d = default(Delivery<Order>);
        Assert.That(() => d.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("default"));
    }

    [Test]
    public async Task DisposeConsumer_ReturnsUnacked_RedeliveredWithCountPlusOne_AndLateAckThrows()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        var first = broker.Consume<Order>("q");
        var d1 = await first.ReceiveAsync();      // in hand
        await first.DisposeAsync();               // Order(2) was only prefetched: returned as never delivered

        Assert.That(() => d1.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("disposed"));

        await using var second = broker.Consume<Order>("q");
        var r1 = await second.ReceiveAsync();
        var r2 = await second.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That((r1.Message.Id, r1.DeliveryCount, r1.Redelivered), Is.EqualTo((1, 2, true)));
            Assert.That((r2.Message.Id, r2.DeliveryCount, r2.Redelivered), Is.EqualTo((2, 1, false)), "never handed to code: not a redelivery");
        });
    }

    [Test]
    public async Task AckTimeout_ReturnsMessageAndLateAckThrows()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.AckTimeout = TimeSpan.FromSeconds(30)).Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync();

        time.Advance(TimeSpan.FromSeconds(29));
        Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(1));

        time.Advance(TimeSpan.FromSeconds(1));
        var again = await consumer.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(again.Message.Id, Is.EqualTo(1));
            Assert.That(again.Redelivered, Is.True);
            Assert.That(again.DeliveryCount, Is.EqualTo(2));
            Assert.That(() => d.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("ack timeout"));
        });
        await again.AckAsync();
        Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.EqualTo(1));
    }

    [Test]
    public async Task NackWithDelay_RedeliversOnlyWhenDue()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync();
        await d.NackAsync(requeue: true, delay: TimeSpan.FromSeconds(10));

        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromSeconds(0.1));
        var again = await consumer.ReceiveAsync();
        Assert.That(again.DeliveryCount, Is.EqualTo(2));
    }

    [Test]
    public async Task QueueRedeliveryPolicy_AppliesToNackWithoutDelay()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.Redelivery = RetryPolicy.Intervals(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(20))).Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        await (await consumer.ReceiveAsync()).NackAsync();
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromSeconds(1));
        var second = await consumer.ReceiveAsync();
        await second.NackAsync();
        time.Advance(TimeSpan.FromSeconds(19));
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That((await consumer.ReceiveAsync()).DeliveryCount, Is.EqualTo(3));
    }

    [Test]
    public async Task ManyDelayedRedeliveries_UseOneSchedulerRegistration()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        const int count = 100_000;
        for (var i = 0; i < count; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1000);
        for (var i = 0; i < count; i++)
        {
            var d = await consumer.ReceiveAsync();
            await d.NackAsync(requeue: true, delay: TimeSpan.FromSeconds(60 + (i % 1000)));
        }

        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(count));
            Assert.That(broker.Engine().Context.Scheduler.Registrations, Is.LessThanOrEqualTo(2), "one wake-up per queue, not per message");
            Assert.That(time.ActiveTimers, Is.EqualTo(1), "one timer for the broker");
        });

        time.Advance(TimeSpan.FromSeconds(60 + 1000));
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.Zero);
    }
}
