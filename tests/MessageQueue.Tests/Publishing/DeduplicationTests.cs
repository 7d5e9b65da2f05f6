using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Publishing;

[TestFixture]
[CancelAfter(20_000)]
public sealed class DeduplicationTests
{
    private static PublishOptions Id(string id) => new() { MessageId = id };

    private static (IMessageBroker Broker, ManualTimeProvider Time) Create(Action<QueueOptions>? more = null)
    {
        var time = new ManualTimeProvider();
        var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddExchange("fan", ExchangeType.Fanout)
            .AddQueue("q", o => { o.DeduplicationWindow = TimeSpan.FromMinutes(5); more?.Invoke(o); })
            .AddQueue("plain")
            .Bind("fan", "q")
            .Bind("fan", "plain")
            .Build();
        return (broker, time);
    }

    [Test]
    public async Task SameIdWithinWindow_NotEnqueued_ResultSaysDuplicate()
    {
        var (broker, _) = Create();
        await using var owned = broker;
        var first = await broker.SendAsync("q", new Order(1), Id("a"));
        var second = await broker.SendAsync("q", new Order(2), Id("a"));

        var info = broker.Management.GetQueueInfo("q");
        using (Assert.EnterMultipleScope())
        {
            Assert.That((first.IsDuplicate, first.RoutedQueues), Is.EqualTo((false, 1)));
            Assert.That((second.IsDuplicate, second.RoutedQueues, second.DuplicateQueues), Is.EqualTo((true, 0, 1)));
            Assert.That(second.MessageId, Is.EqualTo("a"));
            Assert.That((info.Ready, info.Published, info.Duplicates), Is.EqualTo((1, 1, 1)));
        }
    }

    [Test]
    public async Task Window_CountsFromFirstPublish_AndHoldsAfterConsumption()
    {
        var (broker, time) = Create();
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1), Id("a"));
        await using (var consumer = broker.Consume<Order>("q"))
        {
            await (await consumer.ReceiveAsync()).AckAsync();
        }

        time.Advance(TimeSpan.FromMinutes(4.99));
        Assert.That((await broker.SendAsync("q", new Order(2), Id("a"))).IsDuplicate, Is.True);
        time.Advance(TimeSpan.FromMinutes(0.01));
        Assert.That((await broker.SendAsync("q", new Order(3), Id("a"))).IsDuplicate, Is.False);
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task GeneratedAndDistinctIds_AreNeverDuplicates()
    {
        var (broker, _) = Create();
        await using var owned = broker;
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2), Id("x"));
        await broker.SendAsync("q", new Order(3), Id("y"));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(4));
    }

    [Test]
    public async Task Fanout_OnlyTheQueueWithAWindowDropsTheDuplicate()
    {
        var (broker, _) = Create();
        await using var owned = broker;
        await broker.PublishAsync("fan", "", new Order(1), Id("a"));
        var again = await broker.PublishAsync("fan", "", new Order(1), Id("a"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That((again.RoutedQueues, again.DuplicateQueues), Is.EqualTo((1, 1)));
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("plain").Ready, Is.EqualTo(2));
        }
    }

    [Test]
    public async Task Capacity_BoundsMemory_OldestIdsForgottenFirst()
    {
        var (broker, _) = Create(o => o.DeduplicationCapacity = 3);
        await using var owned = broker;
        foreach (var id in new[] { "a", "b", "c", "d" })
        {
            await broker.SendAsync("q", new Order(0), Id(id));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That((await broker.SendAsync("q", new Order(0), Id("d"))).IsDuplicate, Is.True);
            Assert.That((await broker.SendAsync("q", new Order(0), Id("a"))).IsDuplicate, Is.False, "a was forgotten to make room");
        }

        var q = broker.Engine().Context.Topology.GetQueue("q");
        for (var i = 0; i < 10_000; i++)
        {
            await broker.SendAsync("q", i, Id($"id-{i}"));
        }

        Assert.That(q.RememberedIds, Is.EqualTo(3));
    }

    [Test]
    public async Task DeadLettersAndRedrive_AreNotCheckedAgainstTheWindow()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead", o => o.DeduplicationWindow = TimeSpan.FromHours(1))
            .AddQueue("q", o => { o.DeadLetterQueue = "dead"; o.DeduplicationWindow = TimeSpan.FromHours(1); })
            .Build();
        await broker.SendAsync("q", new Order(1), Id("a"));
        await using (var consumer = broker.Consume<Order>("q"))
        {
            await (await consumer.ReceiveAsync()).RejectAsync();
        }

        await broker.WaitForQueueAsync("dead", i => i.Ready == 1);
        Assert.That(await broker.Management.RedriveAsync("dead"), Is.EqualTo(1));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "the redriven message came back although its id is in q's window");
    }
}
