using System.Diagnostics;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// Lost wake-ups: a consumer that waits must be woken by the next message it may receive, whatever happened to
/// the deliveries before (discarded as the wrong type, expired, returned) and whoever held the queue before it.
/// Races run in a bounded loop that makes the failure likely on code that has it.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class WakeUpTests
{
    /// <summary>How long a receive may take before the consumer counts as stuck (nothing else runs meanwhile).</summary>
    private static readonly TimeSpan Stuck = TimeSpan.FromSeconds(5);

    /// <summary>How long each race loop runs.</summary>
    private static readonly TimeSpan LoopTime = TimeSpan.FromSeconds(3);

    [Test]
    public async Task PullConsumer_WhoseDeliveryIsDiscarded_IsStillWokenByTheNextPublish()
    {
        // A Consume<Order> consumer waits; Invoice, Invoice, Order are published while it starts waiting. The invoices
        // reach its window and are dead-lettered as the wrong type; the order must still reach it.
        await using var broker = new MessageBrokerBuilder().AddQueue("q").AddQueue("dead").Build();
        await using var consumer = broker.Consume<Order>("q");
        var rounds = 0;
        var clock = Stopwatch.StartNew();
        using var go = new SemaphoreSlim(0);
        var stop = false;
        var publisher = new Thread(() =>
        {
            while (true)
            {
                go.Wait();
                if (Volatile.Read(ref stop))
                {
                    return;
                }

                broker.SendAsync("q", new Invoice(1)).AsTask().GetAwaiter().GetResult();
                broker.SendAsync("q", new Invoice(2)).AsTask().GetAwaiter().GetResult();
                broker.SendAsync("q", new Order(rounds)).AsTask().GetAwaiter().GetResult();
            }
        }) { IsBackground = true };
        publisher.Start();
        try
        {
            while (clock.Elapsed < LoopTime)
            {
                go.Release();
                using var timeout = new CancellationTokenSource(Stuck);
                Delivery<Order> delivery;
                try
                {
                    delivery = await consumer.ReceiveAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"round {rounds}: the consumer was never woken; queue: {broker.Management.GetQueueInfo("q")}");
                    return;
                }

                Assert.That(delivery.Message.Id, Is.EqualTo(rounds));
                await delivery.AckAsync();
                rounds++;
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            go.Release();
        }

        await TestContext.Out.WriteLineAsync($"{rounds} rounds");
        Assert.That(rounds, Is.GreaterThan(100));
    }

    [Test]
    public async Task SingleActiveConsumer_WaitingStandby_IsWokenWhenTheActiveOneLeaves()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.SingleActiveConsumer = true).Build();
        var active = broker.Consume<Order>("q");
        await using var standby = broker.Consume<Order>("q");
        var waiting = standby.ReceiveAsync().AsTask();
        Assert.That(waiting.IsCompleted, Is.False);
        await active.DisposeAsync();
        await broker.SendAsync("q", new Order(1));
        var delivery = await waiting.WithSafety();
        Assert.That(delivery.Message.Id, Is.EqualTo(1));
        Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(1));
    }

    [Test]
    public async Task SingleActiveConsumer_WaitingStandbySubscription_IsWokenWhenTheActiveOneLeaves()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.SingleActiveConsumer = true).Build();
        var active = broker.Consume<Order>("q");
        var handled = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var standby = broker.Subscribe<Order>("q", (d, _) =>
        {
            handled.TrySetResult(d.Message.Id);
            return ValueTask.CompletedTask;
        });
        await broker.WaitForQueueAsync("q", i => i.Consumers == 2);
        await active.DisposeAsync();
        await broker.SendAsync("q", new Order(7));
        Assert.That(await handled.Task.WithSafety(), Is.EqualTo(7));
    }

    [Test]
    public async Task SingleActiveConsumer_HandOverRace_TheStandbyAlwaysGetsTheNextMessage()
    {
        var clock = Stopwatch.StartNew();
        var rounds = 0;
        while (clock.Elapsed < LoopTime)
        {
            await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.SingleActiveConsumer = true).Build();
            var active = broker.Consume<Order>("q");
            await using var standby = broker.Consume<Order>("q");
            var waiting = standby.ReceiveAsync().AsTask();
            var leaving = Task.Run(() => active.DisposeAsync().AsTask());
            await broker.SendAsync("q", new Order(rounds));
            await leaving;
            var done = await Task.WhenAny(waiting, Task.Delay(Stuck));
            Assert.That(done, Is.SameAs(waiting), $"round {rounds}: the standby was never woken; {broker.Management.GetQueueInfo("q")}");
            Assert.That((await waiting).Message.Id, Is.EqualTo(rounds));
            rounds++;
        }

        Assert.That(rounds, Is.GreaterThan(100));
    }
}
