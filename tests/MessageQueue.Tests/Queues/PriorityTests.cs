using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Queues;

[TestFixture]
[CancelAfter(20_000)]
public sealed class PriorityTests
{
    private static async Task<List<int>> DrainAsync(IMessageBroker broker, int count)
    {
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var ids = new List<int>();
        for (var i = 0; i < count; i++)
        {
            var d = await consumer.ReceiveAsync();
            ids.Add(d.Message.Id);
            await d.AckAsync();
        }

        return ids;
    }

    [Test]
    public async Task MaxPriority_HigherFirst_FifoWithinLevel_AboveMaxClamps()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.MaxPriority = 5).Build();
        var sends = new (int Id, byte Priority)[] { (1, 0), (2, 5), (3, 1), (4, 9), (5, 5), (6, 0), (7, 1) };
        foreach (var (id, priority) in sends)
        {
            await broker.SendAsync("q", new Order(id), new PublishOptions { Priority = priority });
        }

        // 9 clamps to 5 and keeps publish order within level 5: 2, 4, 5.
        Assert.That(await DrainAsync(broker, 7), Is.EqualTo(new[] { 2, 4, 5, 3, 7, 1, 6 }));
    }

    [Test]
    public async Task WithoutMaxPriority_PriorityIgnored()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        for (var i = 1; i <= 4; i++)
        {
            await broker.SendAsync("q", new Order(i), new PublishOptions { Priority = (byte)(i * 10) });
        }

        Assert.That(await DrainAsync(broker, 4), Is.EqualTo(new[] { 1, 2, 3, 4 }));
    }

    [Test]
    public async Task Requeued_KeepsItsPlaceWithinItsLevel()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.MaxPriority = 3).Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Priority = 2 });
        await broker.SendAsync("q", new Order(2), new PublishOptions { Priority = 2 });
        await broker.SendAsync("q", new Order(3), new PublishOptions { Priority = 1 });
        await using (var c = broker.Consume<Order>("q", o => o.Prefetch = 1))
        {
            var d = await c.ReceiveAsync();
            Assert.That(d.Message.Id, Is.EqualTo(1));
            await d.NackAsync(requeue: true);
            await broker.SendAsync("q", new Order(4), new PublishOptions { Priority = 2 });
            var again = await c.ReceiveAsync();
            Assert.That((again.Message.Id, again.Redelivered), Is.EqualTo((1, true)));
            await again.AckAsync();
        }

        Assert.That(await DrainAsync(broker, 3), Is.EqualTo(new[] { 2, 4, 3 }));
    }

    [Test]
    public async Task Peek_ShowsPriorityOrder()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.MaxPriority = 2).Build();
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2), new PublishOptions { Priority = 2 });
        var peeked = await broker.Management.PeekAsync("q");
        Assert.That(peeked.Select(p => ((Order)p.Body).Id), Is.EqualTo(new[] { 2, 1 }));
    }

    [TestCase(0)]
    [TestCase(256)]
    public void MaxPriority_OutOfRange_Rejected(int max)
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue("q", o => o.MaxPriority = max).Build());
        Assert.That(ex!.Message, Does.Contain("MaxPriority"));
    }
}
