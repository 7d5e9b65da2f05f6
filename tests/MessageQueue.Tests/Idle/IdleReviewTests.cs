using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Idle;

/// <summary>
/// Faults found reviewing 4b62c46 (exact in-flight tracking). Each test fails on that code; the comment on each says
/// what goes wrong.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class IdleReviewTests
{
    // Topology.DeleteQueue removes the queue from the topology, then BrokerQueue.Delete drops its messages, but neither
    // calls Notify()/InFlight.Signal(). A waiter that was kept busy by the deleted queue's messages is never woken: the
    // broker is idle, yet WhenIdleAsync hangs until something unrelated changes.
    [Test]
    public async Task DeletingAQueueThatHeldTheOnlyWork_WakesTheIdleWaiter()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").AddQueue("other").Build();
        await broker.SendAsync("q", new Order(1));
        var idle = broker.Engine().WhenIdleAsync(); // its first check runs before it returns
        Assert.That(idle.IsCompleted, Is.False, "a ready message is work");

        Assert.That(await broker.Management.DeleteQueueAsync("q"), Is.True);
        Assert.That(broker.Engine().Context.InFlight.IsIdle(), Is.True, "nothing is left once the queue is gone");

        var woke = await Task.WhenAny(idle, Task.Delay(TimeSpan.FromSeconds(5))) == idle;
        Assert.That(woke, Is.True, "the broker is idle, but deleting the queue never woke the waiter");
    }

    // Redrive.RunAsync takes a page of dead letters out of the dead-letter queue (BrokerQueue.TakeForMove, which then
    // calls Notify) and only afterwards offers/enqueues each copy in its origin queue. In between, the messages are in
    // no queue, no inbox, no dead-letter list and no store unit: InFlight.IsIdle sees no work while one message exists
    // the whole time. (A durable origin widens the window: the copies are only reserved until the whole page's unit is
    // submitted.)
    [Test]
    public async Task Redrive_MessageMovingBackToItsQueue_IsNeverInvisible()
    {
        const int Rounds = 3000;
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dlq")
            .AddQueue("work", o => o.DeadLetterQueue = "dlq")
            .Build();
        var tracker = broker.Engine().Context.InFlight;
        await broker.SendAsync("work", new Order(1)); // one message, alive from here to the end
        await using var consumer = broker.Consume<Order>("work", o => o.Prefetch = 1);

        var stop = 0;
        var falseIdle = 0;
        var checks = 0;
        var round = 0;
        var firstRound = -1;
        var redriving = 0;
        var duringRedrive = 0;
        var checker = Task.Run(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                checks++;
                var redrivingBefore = Volatile.Read(ref redriving);
                if (tracker.IsIdle())
                {
                    if (Interlocked.Increment(ref falseIdle) == 1)
                    {
                        firstRound = Volatile.Read(ref round);
                    }

                    if (redrivingBefore == 1 && Volatile.Read(ref redriving) == 1)
                    {
                        duringRedrive++;
                    }
                }
            }
        });

        try
        {
            for (; round < Rounds && Volatile.Read(ref falseIdle) == 0; Interlocked.Increment(ref round))
            {
                var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
                await delivery.NackAsync(requeue: false); // to "dlq", tracked as a dead letter in transit
                await broker.WaitForQueueAsync("dlq", i => i.Ready == 1);
                Volatile.Write(ref redriving, 1);
                var moved = await broker.Management.RedriveAsync("dlq"); // back to "work"
                Volatile.Write(ref redriving, 0);
                Assert.That(moved, Is.EqualTo(1));
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            await checker.WithSafety();
        }

        TestContext.Out.WriteLine($"{checks} checks, {falseIdle} idle ({duringRedrive} of them inside RedriveAsync), first in round {firstRound}");
        Assert.That(falseIdle, Is.Zero, $"IsIdle saw no work while the only message existed: {falseIdle} times, {duringRedrive} of them inside RedriveAsync (first in round {firstRound})");
    }

    // A publisher blocked by a full Block queue is woken (RoomFreed completes _roomSignal) when a consumer takes the
    // head, and admits its message later, on the thread pool. If the consumer acks before the publisher has admitted,
    // there is an instant where the message is neither in the publisher's wait (not tracked at all) nor in the queue:
    // InFlight.IsIdle reports no work although a publish that started long before is about to enqueue.
    [Test]
    public async Task BlockedPublisher_WokenByRoom_IsNeverInvisible()
    {
        const int Rounds = 3000;
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("q", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; })
            .Build();
        var tracker = broker.Engine().Context.InFlight;
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 1);

        var stop = 0;
        string? seen = null;
        var blocked = 0; // the round's number (from 1) from before the third publish starts until its message is received, else 0
        var falseIdle = 0;
        var checker = Task.Run(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                var before = Volatile.Read(ref blocked);
                if (tracker.IsIdle() && before != 0 && Volatile.Read(ref blocked) == before) // the same round: no ABA across rounds
                {
                    if (Interlocked.Increment(ref falseIdle) == 1)
                    {
                        seen = broker.Management.GetQueueInfo("q").ToString();
                    }
                }
            }
        });

        try
        {
            for (var round = 0; round < Rounds && Volatile.Read(ref falseIdle) == 0; round++)
            {
                // m1 goes into the consumer's window (prefetch 1), m2 fills the queue (MaxLength 1), m3 waits for room.
                await broker.SendAsync("q", new Order(1)).AsTask().WithSafety();
                await broker.SendAsync("q", new Order(2)).AsTask().WithSafety();
                Volatile.Write(ref blocked, round + 1);
                var third = broker.SendAsync("q", new Order(3)).AsTask();
                Assert.That(third.IsCompleted, Is.False, "the third publish waits for room");
                await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync(); // m2 moves to the window: room for m3
                await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync(); // m2 acked: only m3 is left
                var last = await consumer.ReceiveAsync().AsTask().WithSafety();
                Volatile.Write(ref blocked, 0);
                await third.WithSafety();
                await last.AckAsync();
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            await checker.WithSafety();
        }

        Assert.That(falseIdle, Is.Zero, $"IsIdle saw no work while a blocked publisher was about to enqueue (first seen: {seen})");
    }

    // An ordered subscription (OrderingKey) retries a failed delivery in place: HandleInOrderAsync keeps the delivery
    // in hand (unacked) and keeps _orderedRunning raised while it waits out the retry delay. An unordered subscription
    // nacks it with the delay instead, so it is a delayed redelivery not yet due: not work. So with a test clock the
    // unordered subscription is idle until the clock moves, while the ordered one never is: WhenIdleAsync hangs.
    [TestCase(false)]
    [TestCase(true)]
    public async Task RetryWaitingForItsDelay_IsNotWork_InEitherSubscriptionMode(bool ordered)
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        var attempts = 0;
        await using var subscription = broker.Subscribe<Order>("q", (d, ct) =>
        {
            if (Interlocked.Increment(ref attempts) == 1)
            {
                throw new InvalidOperationException("retried after a minute");
            }

            return ValueTask.CompletedTask;
        }, o =>
        {
            o.Retry = RetryPolicy.Intervals(TimeSpan.FromMinutes(1));
            if (ordered)
            {
                o.OrderingKey = d => d.Message.Kind;
            }
        });

        await broker.SendAsync("q", new Order(1));
        var idle = broker.Engine().WhenIdleAsync();
        var woke = await Task.WhenAny(idle, Task.Delay(TimeSpan.FromSeconds(5))) == idle;
        Assert.That(woke, Is.True, $"ordered={ordered}: a retry waiting for its delay (not due on the test clock) kept the broker busy; attempts={Volatile.Read(ref attempts)}");
        Assert.That(Volatile.Read(ref attempts), Is.EqualTo(1));
    }
}
