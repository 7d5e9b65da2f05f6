using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class SingleActiveConsumerTests
{
    [Test]
    public async Task SingleActiveConsumer_FirstReceivesAll_NextTakesOverWithReturnedMessages()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.SingleActiveConsumer = true).Build();
        var first = broker.Consume<Order>("q", o => o.Prefetch = 2);
        await using var second = broker.Consume<Order>("q", o => o.Prefetch = 2);
        for (var i = 1; i <= 4; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        var held = await first.ReceiveAsync();
        Assert.Multiple(() =>
        {
            Assert.That(held.Message.Id, Is.EqualTo(1));
            Assert.That(second.TryReceive(out _), Is.False, "the second consumer waits while the first is active");
            Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(2), "only the active consumer's window is used");
        });

        await first.DisposeAsync();
        var ids = new List<(int Id, bool Redelivered)>();
        for (var i = 0; i < 4; i++)
        {
            var d = await second.ReceiveAsync();
            ids.Add((d.Message.Id, d.Redelivered));
            await d.AckAsync();
        }

        Assert.That(ids, Is.EqualTo(new[] { (1, true), (2, false), (3, false), (4, false) }));
    }
}
