using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Management;

/// <summary>A dead-letter target declared after the queue that names it, as RabbitMQ allows at run time.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class DeadLetterTargetTests
{
    [Test]
    public async Task AtRunTime_AMissingDeadLetterExchange_IsAccepted_DeadLettersAreDroppedAndCountedUntilItExists()
    {
        var logs = new RecordingLoggerFactory();
        await using var broker = new MessageBrokerBuilder().UseLoggerFactory(logs).Build();
        await broker.Management.DeclareQueueAsync("work", o => o.DeadLetterExchange = "dlx");
        await using var consumer = broker.Consume<Order>("work");
        for (var i = 1; i <= 2; i++)
        {
            await broker.SendAsync("work", new Order(i));
            await (await consumer.ReceiveAsync()).RejectAsync("no");
        }

        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("work").Dropped, Is.EqualTo(2));
            Assert.That(logs.Entries.Count(e => e.Message.Contains("dead-letter exchange 'dlx'", StringComparison.Ordinal)), Is.EqualTo(1), "warned once");
        });

        await broker.Management.DeclareExchangeAsync("dlx", ExchangeType.Fanout);
        await broker.Management.DeclareQueueAsync("dead");
        await broker.Management.BindQueueAsync("dlx", "dead");
        await broker.SendAsync("work", new Order(3));
        await (await consumer.ReceiveAsync()).RejectAsync("no");

        var dead = await broker.Management.PeekAsync("dead");
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 3 }));
            Assert.That(broker.Management.GetQueueInfo("work").DeadLettered, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task AtRunTime_AMissingDeadLetterQueue_IsAccepted_UntilItExists()
    {
        var logs = new RecordingLoggerFactory();
        await using var broker = new MessageBrokerBuilder().UseLoggerFactory(logs).Build();
        await broker.Management.DeclareQueueAsync("work", o => o.DeadLetterQueue = "work.dead");
        await using var consumer = broker.Consume<Order>("work");
        await broker.SendAsync("work", new Order(1));
        await (await consumer.ReceiveAsync()).RejectAsync();
        Assert.That(broker.Management.GetQueueInfo("work").Dropped, Is.EqualTo(1));
        Assert.That(logs.Entries.Count(e => e.Message.Contains("dead-letter queue 'work.dead'", StringComparison.Ordinal)), Is.EqualTo(1));

        await broker.Management.DeclareQueueAsync("work.dead");
        await broker.SendAsync("work", new Order(2));
        await (await consumer.ReceiveAsync()).RejectAsync();
        Assert.That(broker.Management.GetQueueInfo("work.dead").Ready, Is.EqualTo(1));
    }

    [Test]
    public void AtBuild_AMissingDeadLetterExchange_IsStillReported()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue("work", o => o.DeadLetterExchange = "dlx").Build());
        Assert.That(ex!.Message, Does.Contain("dead-letter exchange 'dlx'"));
    }
}
