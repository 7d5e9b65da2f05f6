using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

[TestFixture]
[CancelAfter(20_000)]
public sealed class ShutdownTests
{
    [Test]
    public async Task DisposeBroker_WaitsForRunningHandler_ReturnsPrefetched_ThenRejectsPublishes()
    {
        var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = 0;
        broker.Subscribe<Order>("q", async (d, _) =>
        {
            started.TrySetResult();
            await release.Task;
            Interlocked.Increment(ref handled);
        }, o => o.Prefetch = 10);

        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await started.Task.WithSafety();
        var disposing = broker.DisposeAsync().AsTask();
        Assert.That(disposing.IsCompleted, Is.False, "waits for the running handler");
        Assert.That(() => broker.SendAsync("q", new Order(99)), Throws.TypeOf<ObjectDisposedException>());

        release.SetResult();
        await disposing.WithSafety();

        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(handled, Is.EqualTo(1));
            Assert.That(info.Acked, Is.EqualTo(1), "the running handler finished and was acked");
            Assert.That(info.Ready, Is.EqualTo(4), "prefetched messages went back to the queue");
            Assert.That(info.Unacked, Is.Zero);
            Assert.That(info.Redelivered, Is.Zero, "never handed to the handler: not counted as delivered");
        });
    }

    [Test]
    public async Task DisposeBroker_HandlerPastTimeout_IsCancelledAndItsMessageReturned()
    {
        var time = new ManualTimeProvider();
        var broker = new MessageBrokerBuilder().UseTimeProvider(time).WithShutdownTimeout(TimeSpan.FromSeconds(5)).AddQueue("q").Build();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        broker.Subscribe<Order>("q", async (_, ct) =>
        {
            started.TrySetResult();
            ct.Register(() => cancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
        });

        await broker.SendAsync("q", new Order(1));
        await started.Task.WithSafety();
        var disposing = broker.DisposeAsync().AsTask();
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.That(disposing.IsCompleted, Is.False);
        time.Advance(TimeSpan.FromSeconds(1));
        await cancelled.Task.WithSafety();
        await disposing.WithSafety();

        var info = broker.Management.GetQueueInfo("q");
        Assert.Multiple(() =>
        {
            Assert.That(info.Ready, Is.EqualTo(1), "returned, not lost");
            Assert.That(info.Acked, Is.Zero);
        });
    }

    [Test]
    public async Task DisposeSubscription_OtherSubscriptionTakesOver()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var first = broker.Subscribe<Order>("q", (_, _) => ValueTask.CompletedTask);
        await first.DisposeAsync();
        var seen = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var second = broker.Subscribe<Order>("q", (d, _) => { seen.TrySetResult(d.Message.Id); return ValueTask.CompletedTask; });
        await broker.SendAsync("q", new Order(7));
        Assert.That(await seen.Task.WithSafety(), Is.EqualTo(7));
        Assert.That(broker.Management.GetQueueInfo("q").Consumers, Is.EqualTo(1));
    }

    [Test]
    public async Task DisposeBroker_Twice_IsSafe()
    {
        var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.DisposeAsync();
        await Assert.DoesNotThrowAsync(async () => await broker.DisposeAsync());
    }
}
