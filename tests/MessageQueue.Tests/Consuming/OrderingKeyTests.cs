using System.Collections.Concurrent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class OrderingKeyTests
{
    [Test]
    public async Task ManyKeys_Concurrency8_EachKeyInQueueOrder_OneAtATimePerKey()
    {
        const int Keys = 40, PerKey = 50;
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var handled = new ConcurrentDictionary<string, List<int>>();
        var busy = new ConcurrentDictionary<string, int>();
        var running = 0;
        var peak = 0;
        var overlapPerKey = 0;
        var random = new Random(7);

        // Published first, so the subscription meets a full queue with every key interleaved.
        for (var i = 0; i < Keys * PerKey; i++)
        {
            await broker.SendAsync("q", new Order(i, Kind: $"k{random.Next(Keys)}"));
        }

        await using var sub = broker.Subscribe<Order>("q", async (d, _) =>
        {
            var key = d.Message.Kind;
            if (busy.AddOrUpdate(key, 1, (_, n) => n + 1) > 1)
            {
                Interlocked.Increment(ref overlapPerKey);
            }

            var now = Interlocked.Increment(ref running);
            Concurrency.InterlockedMax(ref peak, now);
            for (var y = 0; y <= d.Message.Id % 4; y++)
            {
                await Task.Yield(); // handlers of different lengths, so keys interleave
            }

            handled.GetOrAdd(key, _ => []).Add(d.Message.Id);
            Interlocked.Decrement(ref running);
            busy.AddOrUpdate(key, 0, (_, n) => n - 1);
        }, o => { o.Concurrency = 8; o.Prefetch = 64; o.OrderingKey = d => d.Message.Kind; });

        await broker.WaitForQueueAsync("q", i => i.Acked == Keys * PerKey);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(overlapPerKey, Is.Zero, "two messages of one key ran at the same time");
            Assert.That(peak, Is.InRange(2, 8), "different keys must run in parallel, at most Concurrency at once");
            Assert.That(handled.Values.Sum(l => l.Count), Is.EqualTo(Keys * PerKey));
            foreach (var (key, ids) in handled)
            {
                Assert.That(ids, Is.Ordered, $"key {key}");
            }
        }
    }

    [Test]
    public async Task BusyKey_DoesNotHoldBackOtherKeys()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var order = new ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", async (d, _) =>
        {
            if (d.Message.Id == 1)
            {
                await gate.Task;
            }

            order.Enqueue(d.Message.Id);
        }, o => { o.Concurrency = 2; o.OrderingKey = d => d.Message.Kind; });

        await broker.SendAsync("q", new Order(1, "a"));
        await broker.SendAsync("q", new Order(2, "a"));
        await broker.SendAsync("q", new Order(3, "b"));
        await broker.SendAsync("q", new Order(4, "b"));
        await broker.WaitForQueueAsync("q", i => i.Acked == 2);
        Assert.That(order, Is.EqualTo(new[] { 3, 4 }), "key b ran while key a was busy; 2 waited behind 1");

        gate.SetResult();
        await broker.WaitForQueueAsync("q", i => i.Acked == 4);
        Assert.That(order, Is.EqualTo(new[] { 3, 4, 1, 2 }));
    }

    [Test]
    public async Task Retry_BlocksLaterMessagesOfItsKey_UntilItSucceeds()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        var log = new ConcurrentQueue<string>();
        var failedOnce = false;
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            log.Enqueue($"{d.Message.Id}#{d.DeliveryCount}{(d.Redelivered ? "r" : "")}");
            if (d.Message.Id == 1 && !failedOnce)
            {
                failedOnce = true;
                throw new InvalidOperationException("first try fails");
            }

            return ValueTask.CompletedTask;
        }, o => { o.Concurrency = 4; o.Retry = RetryPolicy.Intervals(TimeSpan.FromSeconds(10)); o.OrderingKey = d => d.Message.Kind; });

        await broker.SendAsync("q", new Order(1, "a"));
        await broker.SendAsync("q", new Order(2, "a"));
        await broker.SendAsync("q", new Order(3, "b"));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1 && i.Unacked == 2);
        await time.WaitForArmedTimersAsync(1); // the retry's wait: 1 has failed once (Unacked counts it from its delivery, before its handler ran)
        Assert.That(log, Is.EqualTo(new[] { "1#1", "3#1" }).Or.EqualTo(new[] { "3#1", "1#1" }));

        time.Advance(TimeSpan.FromSeconds(9.999));
        Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.EqualTo(1), "2 must wait behind 1's retry");
        time.Advance(TimeSpan.FromMilliseconds(1));
        var info = await broker.WaitForQueueAsync("q", i => i.Acked == 3);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(log.Where(e => !e.StartsWith('3')), Is.EqualTo(new[] { "1#1", "1#2r", "2#1" }));
            Assert.That((info.Delivered, info.Redelivered), Is.EqualTo((4, 1)));
        }
    }

    [Test]
    public async Task RetriesExhausted_DeadLetters_ThenTheKeyMovesOn()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("q", o => { o.DeadLetterQueue = "dead"; o.MaxDeliveryCount = 10; })
            .Build();
        var handled = new ConcurrentQueue<string>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            handled.Enqueue($"{d.Message.Id}#{d.DeliveryCount}");
            return d.Message.Id == 1 ? throw new InvalidOperationException("always") : ValueTask.CompletedTask;
        }, o => { o.Concurrency = 2; o.Retry = RetryPolicy.Immediate(2); o.OrderingKey = d => d.Message.Kind; });

        await broker.SendAsync("q", new Order(1, "a"));
        await broker.SendAsync("q", new Order(2, "a"));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1 && i.DeadLettered == 1);

        var dead = await broker.Management.PeekAsync("dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(handled, Is.EqualTo(new[] { "1#1", "1#2", "1#3", "2#1" }));
            Assert.That(dead[0].Properties.Headers["x-exception-message"], Is.EqualTo("always"));
        }
    }

    [Test]
    public async Task InPlaceRetries_HonourMaxDeliveryCount()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dead")
            .AddQueue("q", o => { o.DeadLetterQueue = "dead"; o.MaxDeliveryCount = 2; })
            .Build();
        await using var sub = broker.Subscribe<Order>("q", (_, _) => throw new InvalidOperationException("no"),
            o => { o.Retry = RetryPolicy.Immediate(5); o.OrderingKey = _ => "k"; });
        await broker.SendAsync("q", new Order(1));
        await broker.WaitForQueueAsync("q", i => i.DeadLettered == 1);

        var dead = await broker.Management.PeekAsync("dead");
        Assert.That(dead[0].Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.DeliveryLimit));
        Assert.That(broker.Management.GetQueueInfo("q").Delivered, Is.EqualTo(2));
    }

    [Test]
    public async Task KeyFunctionThrows_DeadLettersThatMessage_OthersRun()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var handled = new ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            handled.Enqueue(d.Message.Id);
            return ValueTask.CompletedTask;
        }, o => { o.Concurrency = 2; o.OrderingKey = d => d.Message.Id == 2 ? throw new FormatException("bad key") : null; });

        for (var i = 1; i <= 3; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await broker.WaitForQueueAsync("q", i => i.Acked == 2 && i.DeadLettered == 1);
        var dead = await broker.Management.PeekAsync("dead");
        Assert.That(handled.Order(), Is.EqualTo(new[] { 1, 3 }));
        Assert.That(dead[0].Properties.Headers["x-exception-type"], Is.EqualTo(typeof(FormatException).FullName));
    }

    [Test]
    public async Task Dispose_ReturnsMessagesWaitingInLanes_AsNeverDelivered()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sub = broker.Subscribe<Order>("q", async (_, _) =>
        {
            started.TrySetResult();
            await gate.Task;
        }, o => { o.Concurrency = 4; o.OrderingKey = _ => "same"; });
        for (var i = 1; i <= 5; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await started.Task.WithSafety();
        await broker.WaitForQueueAsync("q", i => i.Unacked == 5);
        var disposing = sub.DisposeAsync().AsTask();
        gate.SetResult();
        await disposing.WithSafety();

        var info = broker.Management.GetQueueInfo("q");
        var ids = (await broker.Management.PeekAsync("q")).Select(m => (((Order)m.Body).Id, m.DeliveryCount));
        using (Assert.EnterMultipleScope())
        {
            Assert.That((info.Acked, info.Ready, info.Delivered, info.Redelivered), Is.EqualTo((1, 4, 1, 0)));
            Assert.That(ids, Is.EqualTo(new[] { (2, 0), (3, 0), (4, 0), (5, 0) }));
        }
    }
}
