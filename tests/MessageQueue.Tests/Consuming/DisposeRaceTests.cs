using System.Diagnostics;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace MessageQueue.Tests.Consuming;

/// <summary>Starting consumers while the broker is being disposed, and disposing it synchronously.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class DisposeRaceTests
{
    [Test]
    public async Task SubscribeOrConsume_RacingDisposeAsync_NoConsumerIsLeftAfterDisposeReturns()
    {
        var clock = Stopwatch.StartNew();
        var rounds = 0;
        var refused = 0;
        while (rounds < 5_000 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            var broker = new MessageBrokerBuilder().AddQueue("q").Build();
            var pull = rounds % 2 == 1;
            using var start = new Barrier(2);
            var subscribing = Task.Run(() =>
            {
                start.SignalAndWait();
                try
                {
                    return pull
                        ? (IAsyncDisposable)broker.Consume<Order>("q")
                        : broker.Subscribe<Order>("q", (_, _) => ValueTask.CompletedTask);
                }
                catch (ObjectDisposedException)
                {
                    Interlocked.Increment(ref refused);
                    return null;
                }
            });
            start.SignalAndWait();
            await broker.DisposeAsync();
            var consumer = await subscribing;
            Assert.That(broker.Management.GetQueueInfo("q").Consumers, Is.Zero,
                $"round {rounds}: a {(pull ? "pull consumer" : "subscription")} ({(consumer is null ? "refused" : "returned")}) still consumes after DisposeAsync returned");
            if (consumer is not null)
            {
                await consumer.DisposeAsync();
            }

            rounds++;
        }

        await TestContext.Out.WriteLineAsync($"{rounds} rounds, {refused} refused");
    }

    [Test]
    public async Task BlockedPublishers_RacingDispose_AllEndInsteadOfWaitingForever()
    {
        var clock = Stopwatch.StartNew();
        var rounds = 0;
        while (rounds < 300 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            var broker = new MessageBrokerBuilder().AddQueue("q", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; }).Build();
            await broker.SendAsync("q", new Order(0)); // full
            using var start = new Barrier(5);
            var publishers = Enumerable.Range(1, 4).Select(i => Task.Run(async () =>
            {
                start.SignalAndWait();
                try
                {
                    await broker.SendAsync("q", new Order(i));
                }
                catch (ObjectDisposedException)
                {
                }
            })).ToArray();
            start.SignalAndWait();
            await broker.DisposeAsync();
            var all = Task.WhenAll(publishers);
            Assert.That(await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(all), $"round {rounds}: a publisher still waits for room in a disposed broker");
            rounds++;
        }

        await TestContext.Out.WriteLineAsync($"{rounds} rounds");
    }

    [Test]
    public async Task APublisherThatPlansAfterTheWaitersWereFailed_FailsToo()
    {
        // The race above made deterministic: the publisher passed the broker's disposed check just before the stop
        // began, and reaches the full queue just after its waiters were failed.
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => { o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; }).Build();
        await broker.SendAsync("q", new Order(0));
        broker.Engine().Context.Topology.GetQueue("q").FailWaiters(new ObjectDisposedException("broker", "stopping"));
        var late = broker.SendAsync("q", new Order(1)).AsTask();
        Assert.That(await Task.WhenAny(late, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(late), "it must not wait for room that never comes");
        Assert.That(async () => await late, Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task Broker_DisposedSynchronously_StopsLikeDisposeAsync()
    {
        var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var handled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        broker.Subscribe<Order>("q", (_, _) => { handled.TrySetResult(); return ValueTask.CompletedTask; });
        await broker.SendAsync("q", new Order(1));
        await handled.Task.WithSafety();
        ((IDisposable)broker).Dispose();
        Assert.Multiple(() =>
        {
            Assert.That(broker.Management.GetQueueInfo("q").Consumers, Is.Zero);
            Assert.That(async () => await broker.SendAsync("q", new Order(2)), Throws.InstanceOf<ObjectDisposedException>());
        });
        broker.Dispose(); // twice is fine
    }

    [Test]
    public void ServiceProvider_DisposedSynchronously_DisposesTheBroker()
    {
        var services = new ServiceCollection();
        services.AddMessageQueue(mq => mq.AddQueue("q"));
        var provider = services.BuildServiceProvider();
        var broker = provider.GetRequiredService<IMessageBroker>();
        Assert.That(provider.Dispose, Throws.Nothing);
        Assert.That(async () => await broker.SendAsync("q", new Order(1)), Throws.InstanceOf<ObjectDisposedException>());
    }
}
