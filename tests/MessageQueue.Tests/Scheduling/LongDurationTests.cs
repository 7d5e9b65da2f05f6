using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Scheduling;

/// <summary>
/// Durations past the system timer's limit (about 49.7 days) and "never" values. The manual clock's timers refuse
/// waits the system timer refuses, so code that arms one too long fails here as it would in production.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class LongDurationTests
{
    private static readonly TimeSpan SixtyDays = TimeSpan.FromDays(60);

    [Test]
    public async Task Delay_SixtyDays_OnTheSystemClock_IsAccepted()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = SixtyDays });
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Delayed, Is.EqualTo(1));
            Assert.That(info.Published, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Delay_SixtyDays_IsDeliveredAfterSixtyDays_NotBefore()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = SixtyDays });
        await broker.SendAsync("q", new Order(2), new PublishOptions { DeliverAt = time.GetUtcNow() + TimeSpan.FromDays(61) });
        await using var consumer = broker.Consume<Order>("q");

        time.Advance(TimeSpan.FromDays(59));
        Assert.That(consumer.TryReceive(out _), Is.False, "not before its time");
        time.Advance(TimeSpan.FromDays(1));
        var first = await consumer.ReceiveAsync().AsTask().WithSafety();
        await first.AckAsync();
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromDays(1));
        var second = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.Multiple(() =>
        {
            Assert.That(first.Message.Id, Is.EqualTo(1));
            Assert.That(second.Message.Id, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task Delay_PastTheEndOfTime_IsRefusedUpFront_AndNothingIsEnqueued()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        var refused = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
            await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.MaxValue }));
        Assert.That(refused!.Message, Does.Contain("PublishOptions.Delay"));
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Published, Is.Zero);
            Assert.That(info.Ready + info.Delayed, Is.Zero);
        });
    }

    [Test]
    public async Task AckTimeout_SixtyDays_DeliversAndTimesOutAfterSixtyDays()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q", o => o.AckTimeout = SixtyDays).Build();
        await using var consumer = broker.Consume<Order>("q");
        var result = await broker.SendAsync("q", new Order(1));
        Assert.That(result.RoutedQueues, Is.EqualTo(1));
        var first = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(1));

        time.Advance(TimeSpan.FromDays(59));
        Assert.That(broker.Management.GetQueueInfo("q").Unacked, Is.EqualTo(1), "still within its ack timeout");
        time.Advance(TimeSpan.FromDays(1.5));
        var again = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.Multiple(() =>
        {
            Assert.That(again.Redelivered, Is.True);
            Assert.That(async () => await first.AckAsync(), Throws.InvalidOperationException);
        });
    }

    [TestCase(-1, TestName = "AckTimeout_Infinite_MeansNoTimeout")]
    [TestCase(long.MaxValue, TestName = "AckTimeout_MaxValue_MeansNoTimeout")]
    public async Task AckTimeout_Never(long ticks)
    {
        var never = ticks == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks);
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q", o => o.AckTimeout = never).Build();
        await using var consumer = broker.Consume<Order>("q");
        await broker.SendAsync("q", new Order(1));
        var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
        time.Advance(TimeSpan.FromDays(10_000));
        await delivery.AckAsync();
        Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.EqualTo(1));
    }

    [TestCase(-1, TestName = "MessageTtl_Infinite_NeverExpires")]
    [TestCase(long.MaxValue, TestName = "MessageTtl_MaxValue_NeverExpires")]
    public async Task MessageTtl_Never(long ticks)
    {
        var never = ticks == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks);
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q", o => o.MessageTtl = never).Build();
        await broker.SendAsync("q", new Order(1));
        time.Advance(TimeSpan.FromDays(10_000));
        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.EqualTo(1));
            Assert.That(info.Expired, Is.Zero);
        });
    }

    [TestCase(-1, TestName = "TimeToLive_Infinite_NeverExpires")]
    [TestCase(long.MaxValue, TestName = "TimeToLive_MaxValue_NeverExpires")]
    [TestCase(long.MaxValue - 1, TestName = "TimeToLive_AlmostMaxValue_NeverExpires")]
    public async Task TimeToLive_Never(long ticks)
    {
        var never = ticks == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks);
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = never });
        time.Advance(TimeSpan.FromDays(10_000));
        await using var consumer = broker.Consume<Order>("q");
        Assert.That(consumer.TryReceive(out var delivery), Is.True, "a never-expiring message is delivered");
        Assert.That(delivery.Message.Id, Is.EqualTo(1));
    }

    [Test]
    public async Task TimeToLive_SixtyDays_ExpiresAfterSixtyDays()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").AddQueue("dead")
            .Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { TimeToLive = SixtyDays });
        time.Advance(TimeSpan.FromDays(59));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
        time.Advance(TimeSpan.FromDays(2));
        await broker.WaitForQueueAsync("q", i => i.Expired == 1 && i.Ready == 0);
    }

    [Test]
    public async Task Redelivery_SixtyDays_RedeliversAfterSixtyDays()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("q", o => o.Redelivery = RetryPolicy.Intervals(SixtyDays)).Build();
        await using var consumer = broker.Consume<Order>("q");
        await broker.SendAsync("q", new Order(1));
        var first = await consumer.ReceiveAsync().AsTask().WithSafety();
        await first.NackAsync(requeue: true);
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        time.Advance(TimeSpan.FromDays(59));
        Assert.That(consumer.TryReceive(out _), Is.False);
        time.Advance(TimeSpan.FromDays(2));
        var second = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.That(second.DeliveryCount, Is.EqualTo(2));
    }

    [Test]
    public async Task NackDelay_MaxValue_WaitsForever_WithoutWrapping()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await using var consumer = broker.Consume<Order>("q");
        await broker.SendAsync("q", new Order(1));
        var first = await consumer.ReceiveAsync().AsTask().WithSafety();
        await first.NackAsync(requeue: true, delay: TimeSpan.MaxValue);
        time.Advance(TimeSpan.FromDays(10_000));
        Assert.Multiple(() =>
        {
            Assert.That(consumer.TryReceive(out _), Is.False, "a wait that saturates at the end of time never ends");
            Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task SubscriptionRetry_SixtyDays_RetriesAfterSixtyDays()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        var attempts = 0;
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = broker.Subscribe<Order>("q", (_, _) =>
        {
            if (Interlocked.Increment(ref attempts) == 1)
            {
                throw new InvalidOperationException("first try fails");
            }

            second.TrySetResult();
            return ValueTask.CompletedTask;
        }, o => o.Retry = RetryPolicy.Intervals(SixtyDays));
        await broker.SendAsync("q", new Order(1));
        await broker.WaitForQueueAsync("q", i => i.Delayed == 1);
        time.Advance(TimeSpan.FromDays(59));
        Assert.That(Volatile.Read(ref attempts), Is.EqualTo(1));
        time.Advance(TimeSpan.FromDays(2));
        await second.Task.WithSafety();
    }

    [Test]
    public async Task OrderedRetry_SixtyDays_WaitsInPlace_ThenRetries()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        var attempts = 0;
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = broker.Subscribe<Order>("q", (_, _) =>
        {
            if (Interlocked.Increment(ref attempts) == 1)
            {
                failed.TrySetResult();
                throw new InvalidOperationException("first try fails");
            }

            second.TrySetResult();
            return ValueTask.CompletedTask;
        }, o => { o.Retry = RetryPolicy.Intervals(SixtyDays); o.OrderingKey = d => d.Message.Kind; });
        await broker.SendAsync("q", new Order(1));
        await failed.Task.WithSafety();
        await time.WaitForArmedTimersAsync(1);
        time.Advance(TimeSpan.FromDays(59));
        Assert.That(Volatile.Read(ref attempts), Is.EqualTo(1));
        time.Advance(TimeSpan.FromDays(2));
        await second.Task.WithSafety();
    }

    [TestCase(-1, TestName = "DeduplicationWindow_Infinite_RemembersIds")]
    [TestCase(long.MaxValue, TestName = "DeduplicationWindow_MaxValue_RemembersIds")]
    public async Task DeduplicationWindow_Never(long ticks)
    {
        var never = ticks == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks);
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q", o => o.DeduplicationWindow = never).Build();
        await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "a" });
        time.Advance(TimeSpan.FromDays(10_000));
        var again = await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "a" });
        Assert.That(again.IsDuplicate, Is.True);
    }

    [TestCase(-1, TestName = "ShutdownTimeout_Infinite_IsAccepted")]
    [TestCase(long.MaxValue, TestName = "ShutdownTimeout_MaxValue_IsAccepted")]
    public async Task ShutdownTimeout_Never(long ticks)
    {
        var never = ticks == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks);
        var broker = new MessageBrokerBuilder().WithShutdownTimeout(never).AddQueue("q").Build();
        var handled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        broker.Subscribe<Order>("q", (_, _) => { handled.TrySetResult(); return ValueTask.CompletedTask; });
        await broker.SendAsync("q", new Order(1));
        await handled.Task.WithSafety();
        await broker.DisposeAsync().AsTask().WithSafety();
        Assert.That(broker.Management.GetQueueInfo("q").Acked, Is.EqualTo(1));
    }

    [Test]
    public void NegativeDurations_AreRefused_NamingTheOption()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new MessageBrokerBuilder().AddQueue("q", o => o.AckTimeout = TimeSpan.FromSeconds(-5)).Build(),
                Throws.InstanceOf<TopologyException>().With.Message.Contains("AckTimeout"));
            Assert.That(() => new MessageBrokerBuilder().AddQueue("q", o => o.MessageTtl = TimeSpan.FromSeconds(-5)).Build(),
                Throws.InstanceOf<TopologyException>().With.Message.Contains("MessageTtl"));
            Assert.That(() => new MessageBrokerBuilder().AddQueue("q", o => o.DeduplicationWindow = TimeSpan.FromSeconds(-5)).Build(),
                Throws.InstanceOf<TopologyException>().With.Message.Contains("DeduplicationWindow"));
            Assert.That(() => new MessageBrokerBuilder().WithShutdownTimeout(TimeSpan.FromSeconds(-5)), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void TheSuitesClock_RefusesTimersTheSystemTimerRefuses_SoTheseTestsMeanSomething()
    {
        var time = new ManualTimeProvider();
        using var system = TimeProvider.System.CreateTimer(_ => { }, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        using var fake = time.CreateTimer(_ => { }, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Assert.Multiple(() =>
        {
            Assert.That(() => system.Change(SixtyDays, Timeout.InfiniteTimeSpan), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => fake.Change(SixtyDays, Timeout.InfiniteTimeSpan), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(time.ActiveTimers, Is.Zero, "a refused change arms nothing");
            Assert.That(fake.Change(TimeSpan.FromDays(49), Timeout.InfiniteTimeSpan), Is.True);
            Assert.That(time.ActiveTimers, Is.EqualTo(1));
        });
        time.Advance(TimeSpan.FromDays(49));
        Assert.That(time.ActiveTimers, Is.Zero, "a one-shot timer is disarmed once it fired");
    }
}
