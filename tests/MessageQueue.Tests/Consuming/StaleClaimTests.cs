using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// Review of the ack timeout counted from the claim: a stale hand-over left in a consumer's window (its delivery was
/// returned and redelivered to another consumer) must not touch the live delivery's claim time when it is read and
/// skipped.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class StaleClaimTests
{
    [Test]
    public async Task StaleHandoff_ReadLater_DoesNotRestartTheAckTimeoutOfTheLiveDelivery()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.AckTimeout = TimeSpan.FromSeconds(10))
            .Build();

        await using var a = broker.Consume<Order>("q", o => o.Prefetch = 2);
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        var a1 = await a.ReceiveAsync().AsTask().WithSafety(); // A claims 1 at t = 0; 2 waits in A's window
        Assert.That(a1.Message.Id, Is.EqualTo(1));
        Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(2), "both are in A's window");

        await using var b = broker.Consume<Order>("q", o => o.Prefetch = 1);

        // t = 10: A's delivery of 1 times out; A's unclaimed 2 goes back too. 1 goes to A again, 2 to B; the old
        // hand-over of 2 stays, stale, in A's window.
        time.Advance(TimeSpan.FromSeconds(10));
        var b2 = await b.ReceiveAsync().AsTask().WithSafety(); // B claims 2 at t = 10: its deadline is t = 20
        Assert.That(b2.Message.Id, Is.EqualTo(2));

        time.Advance(TimeSpan.FromSeconds(5));
        var a1Again = await a.ReceiveAsync().AsTask().WithSafety(); // t = 15: A reads (and skips) the stale hand-over of 2 first
        Assert.That(a1Again.Message.Id, Is.EqualTo(1));

        time.Advance(TimeSpan.FromSeconds(6)); // t = 21: B has held 2 for 11 s, past its 10 s ack timeout
        await a1Again.AckAsync();

        var info = broker.Management.GetQueueInfo("q");
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await b2.AckAsync(),
            $"B's delivery of 2 (claimed at t = 10) must have timed out at t = 20; queue at t = 21: {info}");
        Assert.That(ex!.Message, Does.Contain("ack timeout"));
    }
}
