using System.Collections.Concurrent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class SubscriptionTests
{
    private sealed class Boom(string message) : Exception(message);

    [Test]
    public async Task Subscribe_HandlerReturns_MessageAcked()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var seen = new ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) => { seen.Enqueue(d.Message.Id); return ValueTask.CompletedTask; });
        for (var i = 0; i < 50; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        var info = await broker.WaitForQueueAsync("q", i => i.Acked == 50);
        Assert.Multiple(() =>
        {
            Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 50)), "one worker keeps FIFO order");
            Assert.That(info.Unacked, Is.Zero);
            Assert.That(info.Ready, Is.Zero);
        });
    }

    [Test]
    public async Task Subscribe_Concurrency_RunsHandlersInParallel()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var running = 0;
        var peak = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = broker.Subscribe<Order>("q", async (d, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            if (now == 4)
            {
                allIn.TrySetResult();
            }

            await allIn.Task;
            Interlocked.Decrement(ref running);
        }, o => o.Concurrency = 4);

        for (var i = 0; i < 8; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await broker.WaitForQueueAsync("q", i => i.Acked == 8);
        Assert.That(peak, Is.EqualTo(4));
    }

    [Test]
    public async Task Subscribe_ImmediateRetry_ThenSucceeds()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var attempts = new ConcurrentQueue<(int Count, bool Redelivered)>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            attempts.Enqueue((d.DeliveryCount, d.Redelivered));
            return d.DeliveryCount < 3 ? throw new Boom("transient") : ValueTask.CompletedTask;
        }, o => o.Retry = RetryPolicy.Immediate(5));

        await broker.SendAsync("q", new Order(1));
        var info = await broker.WaitForQueueAsync("q", i => i.Acked == 1);
        Assert.Multiple(() =>
        {
            Assert.That(attempts, Is.EqualTo(new[] { (1, false), (2, true), (3, true) }));
            Assert.That(info.Redelivered, Is.EqualTo(2));
            Assert.That(info.DeadLettered, Is.Zero);
        });
    }

    [Test]
    public async Task Subscribe_IntervalRetry_WaitsInQueueNotInWorker_ThenDeadLettersWithException()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var attempts = 0;
        var failed = new SemaphoreSlim(0);
        var others = new ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            if (d.Message.Id != 1)
            {
                others.Enqueue(d.Message.Id);
                return ValueTask.CompletedTask;
            }

            Interlocked.Increment(ref attempts);
            throw new Boom($"attempt {d.DeliveryCount}");
        }, o => o.Retry = RetryPolicy.Intervals(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10)));

        await broker.SendAsync("q", new Order(1));
        await broker.WaitForQueueAsync("q", i => i.Delayed == 1);

        // While message 1 waits in the queue, the single worker is free for other messages.
        await broker.SendAsync("q", new Order(2));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1);
        Assert.That(others, Is.EqualTo(new[] { 2 }));

        time.Advance(TimeSpan.FromSeconds(1));
        await broker.WaitForQueueAsync("q", i => i.Delayed == 1 && i.Delivered == 3);
        time.Advance(TimeSpan.FromSeconds(9.5));
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1), "second wait is 10 s");
        time.Advance(TimeSpan.FromSeconds(0.5));
        await broker.WaitForQueueAsync("q", i => i.DeadLettered == 1);

        var dead = (await broker.Management.PeekAsync("dead")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(attempts, Is.EqualTo(3), "first try + 2 retries");
            Assert.That(dead.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(Boom).FullName));
            Assert.That(dead.Properties.Headers["x-exception-message"], Is.EqualTo("attempt 3"));
            Assert.That((string)dead.Properties.Headers["x-exception-stack"]!, Does.Contain(nameof(SubscriptionTests)));
            Assert.That(dead.Properties.Deaths.Single().Reason, Is.EqualTo(DeathRecord.Rejected));
        });
    }

    [Test]
    public async Task Subscribe_ExponentialRetry_DelaysDouble()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await using var sub = broker.Subscribe<Order>("q", (_, _) => throw new Boom("x"),
            o => o.Retry = RetryPolicy.Exponential(3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)));
        await broker.SendAsync("q", new Order(1));
        foreach (var (wait, deliveries) in new[] { (1.0, 2), (2.0, 3), (3.0, 4) })
        {
            await broker.WaitForQueueAsync("q", i => i.Delayed == 1 && i.Delivered == deliveries - 1);
            time.Advance(TimeSpan.FromSeconds(wait) - TimeSpan.FromMilliseconds(1));
            Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1), $"still waiting before retry {deliveries - 1}");
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        var info = await broker.WaitForQueueAsync("q", i => i.Dropped == 1);
        Assert.That(info.Delivered, Is.EqualTo(4));
    }

    [Test]
    public async Task Subscribe_NoRetry_FirstFailureDeadLetters()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        await using var sub = broker.Subscribe<Order>("q", (_, _) => throw new Boom("no"));
        await broker.SendAsync("q", new Order(1));
        await broker.WaitForQueueAsync("dead", i => i.Ready == 1);
        Assert.That(broker.Management.GetQueueInfo("q").Delivered, Is.EqualTo(1));
    }

    [Test]
    public async Task Subscribe_HandlerSettlesItself_NoDoubleAck()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        await using var sub = broker.Subscribe<Order>("q", async (d, ct) => await d.RejectAsync("not for us", ct));
        await broker.SendAsync("q", new Order(1));
        await broker.WaitForQueueAsync("dead", i => i.Ready == 1);
        var dead = (await broker.Management.PeekAsync("dead")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(dead.Properties.Headers["x-rejection-reason"], Is.EqualTo("not for us"));
            Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.Zero);
        });
    }

    [Test]
    public async Task SeveralSubscriptions_ShareTheQueue_HonouringPrefetch()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var byA = new ConcurrentQueue<int>();
        var byB = new ConcurrentQueue<int>();
        try
        {
            await using var a = broker.Subscribe<Order>("q", async (d, _) => { byA.Enqueue(d.Message.Id); aIn.TrySetResult(); await gate.Task; }, o => o.Prefetch = 2);
            await using var b = broker.Subscribe<Order>("q", async (d, _) => { byB.Enqueue(d.Message.Id); bIn.TrySetResult(); await gate.Task; }, o => o.Prefetch = 2);

            for (var i = 0; i < 10; i++)
            {
                await broker.SendAsync("q", new Order(i));
            }

            await Task.WhenAll(aIn.Task, bIn.Task).WithSafety();
            var info = broker.Management.GetQueueInfo("q");
            Assert.Multiple(() =>
            {
                Assert.That(info.Unacked, Is.InRange(2, 4), "each blocked consumer holds at most its prefetch of 2");
                Assert.That(info.Ready + info.Unacked, Is.EqualTo(10));
                Assert.That(info.Consumers, Is.EqualTo(2));
                Assert.That(byA.Intersect(byB), Is.Empty);
            });

            gate.SetResult();
            await broker.WaitForQueueAsync("q", i => i.Acked == 10);
            Assert.Multiple(() =>
            {
                Assert.That(byA.Count + byB.Count, Is.EqualTo(10));
                Assert.That(byA.Concat(byB).Order(), Is.EqualTo(Enumerable.Range(0, 10)));
            });
        }
        finally
        {
            gate.TrySetResult();
        }
    }

    [Test]
    public async Task Subscribe_WrongType_DeadLettersAndKeepsRunning()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var handled = new ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) => { handled.Enqueue(d.Message.Id); return ValueTask.CompletedTask; });
        await broker.SendAsync("q", "not an order");
        await broker.SendAsync("q", new Order(5));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1 && i.DeadLettered == 1);
        var dead = (await broker.Management.PeekAsync("dead")).Single();
        Assert.Multiple(() =>
        {
            Assert.That(handled, Is.EqualTo(new[] { 5 }));
            Assert.That(dead.Body, Is.EqualTo("not an order"));
            Assert.That((string)dead.Properties.Headers["x-rejection-reason"]!, Does.Contain("System.String"));
        });
    }

    [Test]
    public async Task Subscribe_BadArguments_Throw()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        Assert.Multiple(() =>
        {
            Assert.That(() => broker.Subscribe<Order>("q", null!), Throws.ArgumentNullException);
            Assert.That(() => broker.Subscribe<Order>("q", (_, _) => default, o => o.Concurrency = 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => broker.Subscribe<Order>("nope", (_, _) => default), Throws.TypeOf<TopologyException>());
            Assert.That(() => RetryPolicy.Intervals(TimeSpan.FromSeconds(-1)), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
