using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// Review of 12efa71 (a settle error infers "already settled" from the entry's handle instead of a settled tag per
/// entry). BrokerQueue.CheckSettle answers AlreadySettled whenever the handle is (tag, Gone). But a delivery that
/// left its consumer's hands without a settle (ack timeout, consumer disposed) goes back to the queue keeping its
/// tag, and anything that then takes it out of the queue (dead-lettering at its delivery limit in Requeue, a purge,
/// TTL expiry, a head drop) sets it Gone with that same tag. The late settle of the old delivery is then reported as
/// "already acknowledged, nacked or rejected", which the caller never did; before 12efa71 (SettledTag set only by a
/// settle) it was reported as the ack timeout / the consumer gone.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class SettleReasonReviewTests
{
    // Ack timeout at the last allowed delivery: ExpireAckDeadlines sets TimedOutTag, then Requeue kills the entry
    // (delivery_limit) -> handle (tag, Gone) -> CheckSettle returns AlreadySettled before it looks at TimedOutTag.
    [Test]
    public async Task LateAck_AfterAckTimeoutAtTheDeliveryLimit_SaysAckTimeout()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead")
            .AddQueue("q", o => { o.AckTimeout = TimeSpan.FromSeconds(30); o.MaxDeliveryCount = 1; o.DeadLetterQueue = "dead"; })
            .Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync().AsTask().WithSafety();

        time.Advance(TimeSpan.FromSeconds(31));
        await broker.WaitForQueueAsync("dead", i => i.Ready == 1); // timed out, and dead-lettered at its limit

        var ex = await Catch(d);
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That(ex.Message, Does.Contain("ack timeout"), "the delivery was never settled: its ack timeout passed");
    }

    // Consumer disposed (RemoveConsumer returns its delivery in hand to the queue, same tag), then a purge: Purge sets
    // the entry Gone with that tag.
    [Test]
    public async Task LateAck_AfterConsumerDisposedThenPurge_SaysConsumerGone()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("q")
            .Build();
        await broker.SendAsync("q", new Order(1));
        var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync().AsTask().WithSafety();
        await consumer.DisposeAsync();
        await broker.WaitForQueueAsync("q", i => i.Ready == 1);
        await broker.Management.PurgeAsync("q");

        var ex = await Catch(d);
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That(ex.Message, Does.Contain("was disposed"), "the delivery was never settled: its consumer left, and the message was purged since");
    }

    // Consumer disposed (its delivery in hand goes back to the queue, same tag), then the message expires by TTL in the
    // queue: Expire sets it Gone with that tag.
    [Test]
    public async Task LateAck_AfterConsumerDisposedThenExpiry_SaysConsumerGone()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.MessageTtl = TimeSpan.FromSeconds(10))
            .Build();
        await broker.SendAsync("q", new Order(1));
        var consumer = broker.Consume<Order>("q");
        var d = await consumer.ReceiveAsync().AsTask().WithSafety();
        await consumer.DisposeAsync();
        await broker.WaitForQueueAsync("q", i => i.Ready == 1);

        time.Advance(TimeSpan.FromSeconds(11));
        await broker.WaitForQueueAsync("q", i => i.Ready == 0 && i.Expired == 1);

        var ex = await Catch(d);
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That(ex.Message, Does.Contain("was disposed"), "the delivery was never settled: its consumer left");
    }

    private static async Task<InvalidOperationException> Catch(Delivery<Order> d)
    {
        try
        {
            await d.AckAsync();
        }
        catch (InvalidOperationException ex)
        {
            return ex;
        }

        throw new AssertionException("the late ack did not throw");
    }
}
