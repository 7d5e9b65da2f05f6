using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Management;

[TestFixture]
[CancelAfter(20_000)]
public sealed class ManagementTests
{
    [Test]
    public async Task GetQueueInfo_CountsEveryTransition()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        for (var i = 0; i < 4; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var c = broker.Consume<Order>("q", o => o.Prefetch = 1);
        await (await c.ReceiveAsync()).AckAsync();                 // 0 acked
        await (await c.ReceiveAsync()).NackAsync(requeue: true);   // 1 back
        await (await c.ReceiveAsync()).AckAsync();                 // 1 redelivered, acked
        await (await c.ReceiveAsync()).RejectAsync();              // 2 dead
        var held = await c.ReceiveAsync();                         // 3 in hand

        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Name, Is.EqualTo("q"));
            Assert.That(info.Published, Is.EqualTo(4));
            Assert.That(info.Delivered, Is.EqualTo(5));
            Assert.That(info.Redelivered, Is.EqualTo(1));
            Assert.That(info.Acked, Is.EqualTo(2));
            Assert.That(info.DeadLettered, Is.EqualTo(1));
            Assert.That(info.Unacked, Is.EqualTo(1));
            Assert.That(info.Ready, Is.Zero);
            Assert.That(info.Consumers, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.EqualTo(1));
        });
        await held.AckAsync();
    }

    [Test]
    public async Task Purge_RemovesReadyOnly()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var c = broker.Consume<Order>("q", o => o.Prefetch = 1);
        var held = await c.ReceiveAsync();
        Assert.That(await broker.Management.PurgeAsync("q"), Is.EqualTo(4));
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.Zero);
            Assert.That(info.Unacked, Is.EqualTo(1));
        });
        await held.AckAsync();
    }

    [Test]
    public async Task Peek_BrowsesInOrderWithoutConsuming()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("q", new Order(i), new PublishOptions { MessageId = $"m{i}" });
        }

        var first = await broker.Management.PeekAsync("q", 3);
        var again = await broker.Management.PeekAsync("q");
        Assert.Multiple(() =>
        {
            Assert.That(first.Select(p => p.Properties.MessageId), Is.EqualTo(new[] { "m0", "m1", "m2" }));
            Assert.That(again, Has.Count.EqualTo(5));
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(5));
        });
    }

    [Test]
    public async Task Redrive_MovesDeadLettersBack_CountResetHistoryKept()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("a", o => o.DeadLetterQueue = "dead")
            .AddQueue("b", o => o.DeadLetterQueue = "dead")
            .Build();
        await broker.SendAsync("a", new Order(1));
        await broker.SendAsync("b", new Order(2));
        await broker.SendAsync("dead", new Order(3)); // never died anywhere: stays
        await using (var ca = broker.Consume<Order>("a"))
        await using (var cb = broker.Consume<Order>("b"))
        {
            var d = await ca.ReceiveAsync();
            await d.NackAsync(requeue: true);
            await (await ca.ReceiveAsync()).RejectAsync("first");
            await (await cb.ReceiveAsync()).RejectAsync("second");
        }

        Assert.That(await broker.Management.RedriveAsync("dead"), Is.EqualTo(2));

        await using var again = broker.Consume<Order>("a");
        var back = await again.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(back.Message.Id, Is.EqualTo(1));
            Assert.That(back.DeliveryCount, Is.EqualTo(1), "delivery count reset");
            Assert.That(back.Properties.Deaths.Single().Queue, Is.EqualTo("a"), "history kept");
            Assert.That(broker.Management.GetQueueInfo("b").Ready, Is.EqualTo(1));
            Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Management_BadArguments_Throw()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => broker.Management.PeekAsync("q", -1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => broker.Management.RedriveAsync("q", -1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            await Assert.ThatAsync(async () => await broker.Management.PurgeAsync("q", new CancellationToken(true)), Throws.InstanceOf<OperationCanceledException>());
        }
    }
}
