using System.Collections.Concurrent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// The ack timeout counts from when code takes a delivery, never from when it entered a prefetch window; the
/// counters count exactly what code saw; a settle that fails says the real reason.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class AckTimeoutTests
{
    [Test]
    public async Task AckTimeout_DoesNotTimeMessagesWaitingInThePrefetchWindow()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead")
            .AddQueue("q", o => { o.AckTimeout = TimeSpan.FromSeconds(1); o.MaxDeliveryCount = 1; o.DeadLetterQueue = "dead"; })
            .Build();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new ConcurrentQueue<int>();
        // Published before the consumer starts, so its first request takes all ten into its window (a busy
        // consumer's window is only refilled when it asks again; see README, Consuming).
        for (var i = 0; i < 10; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await using var sub = broker.Subscribe<Order>("q", async (d, _) =>
        {
            if (d.Message.Id == 0)
            {
                first.TrySetResult();
                await release.Task;
            }

            handled.Enqueue(d.Message.Id);
        }, o => o.Prefetch = 32);
        try
        {
            await first.Task.WithSafety();
            await broker.WaitForQueueAsync("q", i => i.Unacked == 10);
            time.Advance(TimeSpan.FromSeconds(1.5)); // message 0 was in hand for longer than its timeout; 1-9 only waited in the window
            await broker.WaitForQueueAsync("dead", i => i.Ready >= 1);
        }
        finally
        {
            release.TrySetResult();
        }

        await broker.WaitForQueueAsync("q", i => i.Ready == 0 && i.Unacked == 0);

        var dead = await broker.Management.PeekAsync("dead");
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 0 }), "only the message in hand timed out");
            Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo("delivery_limit"));
            Assert.That(handled.Order(), Is.EqualTo(Enumerable.Range(0, 10)), "every message was handled once");
            Assert.That(info.Delivered, Is.EqualTo(10), "deliveries that reached the handler");
            Assert.That(info.Redelivered, Is.Zero);
        });
    }

    [Test]
    public async Task AckTimeout_WithOrderingKey_NothingOvertakesTheTimedOutMessage()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.AckTimeout = TimeSpan.FromSeconds(1))
            .Build();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<int>();
        var calls = 0;
        await using var sub = broker.Subscribe<Order>("q", async (d, _) =>
        {
            order.Enqueue(d.Message.Id);
            if (Interlocked.Increment(ref calls) == 1)
            {
                first.TrySetResult();
                await release.Task; // the first delivery of message 0 outlives its ack timeout
            }
        }, o => { o.Prefetch = 32; o.Concurrency = 4; o.OrderingKey = _ => "k"; });
        for (var i = 0; i < 4; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        try
        {
            await first.Task.WithSafety();
            await broker.WaitForQueueAsync("q", i => i.Unacked == 4);
            time.Advance(TimeSpan.FromSeconds(1.5));
        }
        finally
        {
            release.TrySetResult();
        }

        await broker.WaitForQueueAsync("q", i => i.Ready == 0 && i.Unacked == 0 && i.Acked == 4);
        Assert.That(order, Is.EqualTo(new[] { 0, 0, 1, 2, 3 }), "the key's messages keep their order after message 0 timed out");
    }

    [Test]
    public async Task AckTimeout_StartsWhenCodeTakesTheDelivery()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.AckTimeout = TimeSpan.FromSeconds(10))
            .Build();
        await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 10);
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        var one = await consumer.ReceiveAsync().AsTask().WithSafety();
        time.Advance(TimeSpan.FromSeconds(8)); // message 2 waited 8 s in the window
        var two = await consumer.ReceiveAsync().AsTask().WithSafety();
        await one.AckAsync();
        time.Advance(TimeSpan.FromSeconds(8)); // 8 s in hand: within its timeout
        await two.AckAsync();
        await broker.SendAsync("q", new Order(3));
        var three = await consumer.ReceiveAsync().AsTask().WithSafety();
        time.Advance(TimeSpan.FromSeconds(10));
        var again = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.Multiple(() =>
        {
            Assert.That(again.Message.Id, Is.EqualTo(3));
            Assert.That(again.Redelivered, Is.True);
            Assert.That(async () => await three.AckAsync(), Throws.InvalidOperationException.With.Message.Contains("ack timeout"));
        });
    }

    [Test]
    public async Task SettleErrors_SayTheRealReason()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").AddQueue("gone").Build();
        await using var consumer = broker.Consume<Order>("q");
        await broker.SendAsync("q", new Order(1));
        var d = await consumer.ReceiveAsync().AsTask().WithSafety();
        await d.NackAsync(requeue: true);
        var nackedThenAcked = Assert.ThrowsAsync<InvalidOperationException>(async () => await d.AckAsync());
        var again = await consumer.ReceiveAsync().AsTask().WithSafety();
        await again.AckAsync();
        var ackedTwice = Assert.ThrowsAsync<InvalidOperationException>(async () => await again.AckAsync());

        await using var other = broker.Consume<Order>("gone");
        await broker.SendAsync("gone", new Order(2));
        var doomed = await other.ReceiveAsync().AsTask().WithSafety();
        await broker.Management.DeleteQueueAsync("gone");
        var deleted = Assert.ThrowsAsync<InvalidOperationException>(async () => await doomed.AckAsync());

        Assert.Multiple(async () =>
        {
            Assert.That((await nackedThenAcked)!.Message, Does.Contain("already").And.Not.Contain("ack timeout"));
            Assert.That((await ackedTwice)!.Message, Does.Contain("already").And.Not.Contain("ack timeout"));
            Assert.That((await deleted)!.Message, Does.Contain("deleted").And.Not.Contain("ack timeout"));
        });
    }

    [Test]
    public async Task Counters_AfterAStormWithAckTimeouts_AreExactlyWhatCodeSaw()
    {
        const int Messages = 20_000;
        const int MaxDeliveries = 4;
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead")
            .AddQueue("work", o => { o.AckTimeout = TimeSpan.FromSeconds(1); o.MaxDeliveryCount = MaxDeliveries; o.DeadLetterQueue = "dead"; })
            .Build();
        var seen = 0L;
        var seenRedelivered = 0L;
        var maxSeen = new ConcurrentDictionary<int, int>();
        using var stop = new CancellationTokenSource();

        async Task ConsumeAsync(int seed)
        {
            var random = new Random(seed);
            await using var consumer = broker.Consume<int>("work", o => o.Prefetch = 16);
            try
            {
                while (true)
                {
                    var d = await consumer.ReceiveAsync(stop.Token);
                    Interlocked.Increment(ref seen);
                    if (d.Redelivered)
                    {
                        Interlocked.Increment(ref seenRedelivered);
                    }

                    maxSeen.AddOrUpdate(d.Message, d.DeliveryCount, (_, n) => Math.Max(n, d.DeliveryCount));
                    var roll = random.Next(100);
                    try
                    {
                        if (roll < 60)
                        {
                            await d.AckAsync();
                        }
                        else if (roll < 75)
                        {
                            await d.NackAsync(requeue: true);
                        }
                        else if (roll < 80)
                        {
                            await d.RejectAsync("storm");
                        }

                        // else abandoned: its ack timeout returns it
                    }
                    catch (InvalidOperationException)
                    {
                        // timed out just before the settle
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        var consumers = Enumerable.Range(0, 3).Select(i => Task.Run(() => ConsumeAsync(i))).ToArray();
        for (var i = 0; i < Messages; i++)
        {
            await broker.SendAsync("work", i);
        }

        var ticker = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                time.Advance(TimeSpan.FromMilliseconds(300));
                await Task.Yield();
            }
        });
        await broker.WaitForQueueAsync("work", i => i.Acked + i.DeadLettered + i.Dropped == Messages).WithSafety();
        await stop.CancelAsync();
        await Task.WhenAll(consumers);
        await ticker;

        var info = broker.Management.GetQueueInfo("work");
        var dead = await broker.Management.PeekAsync("dead", int.MaxValue);
        var limitDeaths = dead.Where(m => m.Properties.Deaths[0].Reason == "delivery_limit").Select(m => (int)m.Body).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(info.Delivered, Is.EqualTo(Interlocked.Read(ref seen)), "Delivered counts exactly the deliveries code received");
            Assert.That(info.Redelivered, Is.EqualTo(Interlocked.Read(ref seenRedelivered)), "Redelivered counts exactly the redeliveries code received");
            Assert.That(limitDeaths.Where(id => maxSeen[id] != MaxDeliveries), Is.Empty,
                "a message dead-lettered at the delivery limit reached code that many times");
            Assert.That(limitDeaths, Is.Not.Empty, "the storm reached the delivery limit");
        });
    }
}
