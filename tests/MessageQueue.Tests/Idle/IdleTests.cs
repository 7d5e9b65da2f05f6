using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Idle;

/// <summary>
/// Exact in-flight tracking: <c>WhenIdleAsync</c> completes exactly when no work is left (nothing ready or due,
/// nothing unacked, no handler running, no dead letter or store unit on its way), never from an inactivity timer.
/// Cascades of handlers that publish to the next level, with the hops that hide work between queues: a handler that
/// settles before it publishes, a dead letter routed to the next level, and a retry.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class IdleTests
{
    private const int Levels = 10;

    [Test]
    public async Task Cascade_TenLevels_IsIdleOnlyOnceTheLastLevelHandledEverything_200Rounds()
    {
        await using var broker = Cascade(new MessageBrokerBuilder(), durable: false).Build();
        var done = 0;
        var subscriptions = Subscribe(broker, () => Interlocked.Increment(ref done));
        try
        {
            for (var round = 1; round <= 200; round++)
            {
                var fanIn = 1 + (round % 3);
                for (var i = 0; i < fanIn; i++)
                {
                    await broker.SendAsync("level0", new Order(round));
                }

                await broker.Engine().WhenIdleAsync().WithSafety();
                Assert.That(Volatile.Read(ref done), Is.EqualTo(Expected(round)), $"round {round}: idle before the cascade ended");
                AssertEmpty(broker, round);
            }
        }
        finally
        {
            foreach (var s in subscriptions)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task DeadLettersBetweenQueues_AreWork_AnIdleCheckRacingThemNeverSeesNone()
    {
        // One message at a time: published, rejected by a pull consumer into "dlq", counted by the sink (before its
        // ack). While it is a dead letter between "src" and "dlq" it is in neither queue. A check that finds the broker
        // idle must find every message whose publish had returned before the check already counted.
        const int Rounds = 3000;
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("dlq")
            .AddQueue("src", o => o.DeadLetterQueue = "dlq")
            .Build();
        var published = 0;
        var sunk = 0;
        await using var rejecter = broker.Consume<Order>("src", o => o.Prefetch = 1);
        await using var sink = broker.Consume<Order>("dlq", o => o.Prefetch = 1);
        var rejecting = Task.Run(async () =>
        {
            for (var i = 0; i < Rounds; i++)
            {
                await broker.SendAsync("src", new Order(i));
                Interlocked.Increment(ref published);
                await (await rejecter.ReceiveAsync()).NackAsync(requeue: false);
                while (Volatile.Read(ref sunk) <= i)
                {
                    await Task.Yield(); // the next round starts once this one is counted
                }
            }
        });
        var sinking = Task.Run(async () =>
        {
            for (var i = 0; i < Rounds; i++)
            {
                var d = await sink.ReceiveAsync();
                Interlocked.Increment(ref sunk);
                await d.AckAsync();
            }
        });

        var checks = 0;
        var idle = 0;
        var tracker = broker.Engine().Context.InFlight;
        while (!sinking.IsCompleted)
        {
            checks++;
            var before = Volatile.Read(ref published);
            if (tracker.IsIdle())
            {
                idle++;
                Assert.That(Volatile.Read(ref sunk), Is.GreaterThanOrEqualTo(before), $"check {checks}: idle while a message was on its way");
            }
        }

        await Task.WhenAll(rejecting, sinking).WithSafety();
        Assert.That(tracker.IsIdle(), Is.True);
        TestContext.Out.WriteLine($"{checks} checks, {idle} idle");
    }

    [Test]
    public async Task Idle_WaitsForAnUnackedPullDelivery()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
        var idle = broker.Engine().WhenIdleAsync(); // its first check runs before it returns
        Assert.That(idle.IsCompleted, Is.False, "a delivery in the consumer's hands is work");
        Assert.That(broker.Engine().Context.InFlight.Busy(), Is.EqualTo("queue 'q': 1 unacked"));
        await delivery.AckAsync();
        await idle.WithSafety();
    }

    [Test]
    public async Task Idle_IgnoresDelayedMessagesUntilDue_ThenCountsThem()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromMinutes(1) });
        await broker.Engine().WhenIdleAsync().WithSafety(); // not due: a test clock moves it on

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(broker.Engine().Context.InFlight.IsIdle(), Is.False, "a due message is work");
        await using var consumer = broker.Consume<Order>("q", o => o.AckMode = AckMode.Auto);
        _ = await consumer.ReceiveAsync().AsTask().WithSafety();
        await broker.Engine().WhenIdleAsync().WithSafety();
    }

    [Test]
    public async Task Idle_CompletesAtOnceWhenNothingHappened_AndHonoursCancellation()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.Engine().WhenIdleAsync().WithSafety();
        await broker.SendAsync("q", new Order(1));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => broker.Engine().WhenIdleAsync(cancel.Token));
    }

    /// <summary>Each publish to level 0 ends as one handled message at the last level, plus one at level 4's
    /// dead-letter queue path (which forwards it); so a round of n publishes ends with n at the end.</summary>
    private static int Expected(int rounds) => Enumerable.Range(1, rounds).Sum(r => 1 + (r % 3));

    internal static MessageBrokerBuilder Cascade(MessageBrokerBuilder builder, bool durable)
    {
        for (var i = 0; i < Levels; i++)
        {
            var level = i;
            builder.AddQueue($"level{i}", o =>
            {
                o.Durable = durable;
                if (level == 4)
                {
                    o.DeadLetterQueue = "level4-dead";
                }
            });
        }

        return builder.AddQueue("level4-dead", o => o.Durable = durable);
    }

    /// <summary>Level i forwards to level i+1; level 2 settles before it publishes (the handler is the only sign of
    /// work then); level 4 throws once without retry (the dead letter travels to level4-dead, which forwards to 5);
    /// level 6 fails once and is retried at once; the last level counts.</summary>
    internal static List<ISubscription> Subscribe(IMessageBroker broker, Action reachedEnd)
    {
        var subscriptions = new List<ISubscription>();
        var failedAt6 = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        for (var i = 0; i < Levels; i++)
        {
            var level = i;
            subscriptions.Add(broker.Subscribe<Order>($"level{i}", async (d, ct) =>
            {
                switch (level)
                {
                    case Levels - 1:
                        reachedEnd();
                        return;
                    case 2:
                        await d.AckAsync(ct);
                        await Task.Yield();
                        await broker.SendAsync("level3", d.Message, cancellationToken: ct);
                        return;
                    case 4:
                        throw new InvalidOperationException("to the dead-letter queue");
                    case 6 when failedAt6.TryAdd(d.Properties.MessageId, true):
                        throw new InvalidOperationException("retried");
                    default:
                        await broker.SendAsync($"level{level + 1}", d.Message, cancellationToken: ct);
                        return;
                }
            }, o =>
            {
                o.Concurrency = level % 2 == 0 ? 1 : 3;
                o.Retry = level == 6 ? RetryPolicy.Immediate(1) : RetryPolicy.None;
            }));
        }

        subscriptions.Add(broker.Subscribe<Order>("level4-dead", (d, ct) => broker.SendAsync("level5", d.Message, cancellationToken: ct).AsValueTaskOfNothing()));
        return subscriptions;
    }

    private static void AssertEmpty(IMessageBroker broker, int round)
    {
        foreach (var name in Enumerable.Range(0, Levels).Select(i => $"level{i}").Append("level4-dead"))
        {
            var info = broker.Management.GetQueueInfo(name);
            Assert.That(info.Ready + info.Unacked + info.Delayed, Is.Zero, $"round {round}: {info}");
        }
    }
}

internal static class ValueTaskExtensions
{
    internal static async ValueTask AsValueTaskOfNothing(this ValueTask<PublishResult> publish) => await publish.ConfigureAwait(false);
}
