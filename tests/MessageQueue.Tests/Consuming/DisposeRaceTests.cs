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
