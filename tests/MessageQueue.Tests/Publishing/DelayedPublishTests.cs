using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Publishing;

[TestFixture]
[CancelAfter(30_000)]
public sealed class DelayedPublishTests
{
    [Test]
    public async Task Delay_MessageIsDelayedNotReady_UntilDue_ThenJoinsTheTail()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(10) });
        await broker.SendAsync("q", new Order(2));

        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Delayed, Is.EqualTo(1));
            Assert.That(info.Ready, Is.EqualTo(1));
            Assert.That(info.Published, Is.EqualTo(2));
        });

        await using var consumer = broker.Consume<Order>("q");
        var first = await consumer.ReceiveAsync();
        await first.AckAsync();
        time.Advance(TimeSpan.FromSeconds(9.999));
        Assert.That(consumer.TryReceive(out _), Is.False, "not before its time");

        await broker.SendAsync("q", new Order(3));   // published before the delayed one is due
        time.Advance(TimeSpan.FromMilliseconds(1));
        var second = await consumer.ReceiveAsync();
        await second.AckAsync();
        var third = await consumer.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(first.Message.Id, Is.EqualTo(2));
            Assert.That(second.Message.Id, Is.EqualTo(3));
            Assert.That(third.Message.Id, Is.EqualTo(1));
            Assert.That(third.Redelivered, Is.False);
        });
    }

    [Test]
    public async Task DeliverAt_InThePast_IsReadyAtOnce()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { DeliverAt = time.GetUtcNow().AddMinutes(-1) });
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task DeliverAt_ThroughExchange_EachQueueReleasesAtThatTime()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddExchange("f", ExchangeType.Fanout).AddQueue("a").AddQueue("b").Bind("f", "a").Bind("f", "b").Build();
        var r = await broker.PublishAsync("f", "", new Order(1), new PublishOptions { DeliverAt = time.GetUtcNow().AddHours(1) });
        Assert.That(r.RoutedQueues, Is.EqualTo(2));
        time.Advance(TimeSpan.FromMinutes(59));
        Assert.That(broker.Management.GetQueueInfo("a").Ready + broker.Management.GetQueueInfo("b").Ready, Is.Zero);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("a").Ready, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("b").Ready, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task HundredThousandDelayedMessages_OneTimerAndBoundedRegistrations()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        const int count = 100_000;
        for (var i = 0; i < count; i++)
        {
            await broker.SendAsync("q", i, new PublishOptions { Delay = TimeSpan.FromSeconds(1 + (i % 500)) });
        }

        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(count));
            Assert.That(time.ActiveTimers, Is.EqualTo(1), "one timer for the whole broker");
            Assert.That(broker.Engine().Context.Scheduler.Registrations, Is.LessThanOrEqualTo(2), "one wake-up per queue, not one per message");
        });

        time.Advance(TimeSpan.FromSeconds(250.5));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(count / 2));
        time.Advance(TimeSpan.FromSeconds(250));
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.EqualTo(count));
            Assert.That(info.Delayed, Is.Zero);
        });
    }

    [Test]
    public async Task BadDelayOptions_Throw_AndEnqueueNothing()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(1), DeliverAt = DateTimeOffset.UtcNow }),
                Throws.ArgumentException.With.Message.Contains("both Delay and DeliverAt"));
            Assert.That(() => broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(-1) }),
                Throws.InstanceOf<ArgumentOutOfRangeException>());
        }

        Assert.That(broker.Management.GetQueueInfo("q").Published, Is.Zero);
    }
}
