using System.Collections.Concurrent;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

/// <summary>Faults found reviewing b499320 (hosting): each test states the behaviour expected.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class Review13Tests
{
    private static IHost Host(Action<IServiceCollection> configure) => TestHosts.Build(configure);

    public sealed class Journal
    {
        public ConcurrentQueue<int> Seen { get; } = new();
    }

    /// <summary>A handler that publishes follow-up messages: it depends on the broker it runs on (as a MassTransit
    /// consumer depends on IPublishEndpoint).</summary>
    public sealed class ForwardingHandler(IProducer producer, Journal journal) : IMessageHandler<Order>
    {
        public async ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken)
        {
            journal.Seen.Enqueue(delivery.Message.Id);
            await producer.SendAsync("shipping", delivery.Message, cancellationToken: cancellationToken);
        }
    }

    private sealed class BuiltTwiceException() : Exception("the broker's builder ran again while the broker was being built");

    [Test]
    public async Task AHandlerThatDependsOnIProducer_CanBeValidatedAndRun()
    {
        var builds = 0;
        using var host = Host(s => s
            .AddSingleton<Journal>()
            .AddMessageQueue((_, mq) =>
            {
                // Guard: without it the re-entrant build recurses until the stack overflows.
                if (Interlocked.Increment(ref builds) > 1)
                {
                    throw new BuiltTwiceException();
                }

                mq.AddQueue("billing").AddQueue("shipping").AddHandler<Order, ForwardingHandler>("billing");
            }));

        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await broker.SendAsync("billing", new Order(1));
        await broker.WaitForQueueAsync("shipping", i => i.Ready == 1);
        Assert.That(builds, Is.EqualTo(1));
        await host.StopAsync().WithSafety();
    }

    /// <summary>A scoped dependency that can only be disposed asynchronously (as many pooled connections are).</summary>
    public sealed class AsyncOnlyResource : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    public sealed class UsesAsyncResource(AsyncOnlyResource resource, Journal journal) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken)
        {
            GC.KeepAlive(resource);
            journal.Seen.Enqueue(delivery.Message.Id);
            return ValueTask.CompletedTask;
        }
    }

    [Test]
    public async Task AHandlerWithAScopedAsyncDisposableOnlyDependency_StartsAndRuns()
    {
        using var host = Host(s => s
            .AddSingleton<Journal>().AddScoped<AsyncOnlyResource>()
            .AddMessageQueue(mq => mq.AddQueue("billing").AddHandler<Order, UsesAsyncResource>("billing")));

        await host.StartAsync().WithSafety(); // the run path disposes its scopes asynchronously; the start check must too
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await broker.SendAsync("billing", new Order(7));
        await broker.WaitForQueueAsync("billing", i => i.Acked == 1);
        Assert.That(host.Services.GetRequiredService<Journal>().Seen, Is.EqualTo(new[] { 7 }));
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task AddMessageQueue_AfterTheHostWasBuilt_Throws_AndDoesNotChangeTheBuiltHostsBroker()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddMessageQueue(mq => mq.AddQueue("a"));
        using var host = builder.Build(); // the service collection is read-only from now on

        Assert.That(() => builder.Services.AddSingleton(new Journal()), Throws.InvalidOperationException, "any other registration is refused");
        Assert.That(() => builder.Services.AddMessageQueue(mq => mq.AddQueue("late")), Throws.InvalidOperationException, "so should this one");

        await host.StartAsync().WithSafety();
        var names = host.Services.GetRequiredService<IBrokerManagement>().GetQueueNames();
        Assert.That(names, Is.EqualTo(new[] { "a" }), "a registration made after Build reached the built host");
        await host.StopAsync().WithSafety();
    }

    [Test]
    public void TwoProvidersBuiltFromOneCollection_DoNotShareLaterModules()
    {
        var services = new ServiceCollection().AddMessageQueue(mq => mq.AddQueue("a"));
        using var first = services.BuildServiceProvider();
        services.AddMessageQueue(mq => mq.AddQueue("b")); // e.g. a test fixture's override for a second provider
        using var second = services.BuildServiceProvider();

        var firstQueues = first.GetRequiredService<IBrokerManagement>().GetQueueNames();
        Assert.That(firstQueues, Is.EqualTo(new[] { "a" }), "the first provider was built before 'b' was added");
    }

    /// <summary>A hosted service that sends a last message when the host stops (registered before the broker, so
    /// stopped after it, as hosted services stop in reverse order).</summary>
    public sealed class FarewellService(IProducer producer) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task StopAsync(CancellationToken cancellationToken) =>
            await producer.SendAsync("audit", new Order(99), cancellationToken: cancellationToken);
    }

    [Test]
    public async Task AHostedServiceStoppingAfterTheBrokerHost_CanStillPublish()
    {
        using var host = Host(s => s
            .AddHostedService<FarewellService>()
            .AddMessageQueue(mq => mq.AddQueue("audit")));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();

        await host.StopAsync().WithSafety(); // before this change the container disposed the broker, after every hosted service stopped

        Assert.That(broker.Management.GetQueueInfo("audit").Ready, Is.EqualTo(1));
    }

    /// <summary>A handler that runs until its token is cancelled.</summary>
    public sealed class HangingHandler(HandlerGate gate) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken) =>
            gate.PassAsync(delivery.Message.Id, cancellationToken); // the gate is never opened
    }

    /// <summary>Ordered handlers: the host's give-up reaches them as it does unordered ones (checked: passes).</summary>
    [Test]
    public async Task OrderedHandlers_AreCancelledWhenTheHostGivesUp()
    {
        var gate = new HandlerGate();
        using var host = Host(s => s.AddSingleton(gate).AddMessageQueue(mq => mq
            .WithShutdownTimeout(TimeSpan.FromHours(1))
            .AddQueue("work")
            .AddHandler<Order, HangingHandler>("work", o => { o.Concurrency = 2; o.OrderingKey = d => d.Message.Kind; })));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await broker.SendAsync("work", new Order(1, "a"));
        await broker.SendAsync("work", new Order(2, "b"));
        await broker.SendAsync("work", new Order(3, "a"));
        await gate.Started.WaitAsync().WithSafety();
        await gate.Started.WaitAsync().WithSafety();

        using var giveUp = new CancellationTokenSource();
        var stopping = host.StopAsync(giveUp.Token);
        await broker.WaitForQueueAsync("work", i => i.Consumers == 0);
        await giveUp.CancelAsync();
        await stopping.WithSafety();
        await gate.WaitForCancelledAsync(2);

        var info = broker.Management.GetQueueInfo("work");
        Assert.That(gate.Cancelled.Order(), Is.EqualTo(new[] { 1, 2 }));
        Assert.That((info.Acked, info.Unacked, info.Ready), Is.EqualTo((0L, 0, 3)));
    }

    /// <summary>A worker that subscribes with the plain API (IMessageBroker.Subscribe), not AddHandler.</summary>
    public sealed class SubscribingWorker(IMessageBroker broker, HandlerGate gate) : IHostedService
    {
        private ISubscription? _subscription;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            _subscription = broker.Subscribe<Order>("work", (d, ct) => new HangingHandler(gate).HandleAsync(d, ct));
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask; // leaves it to the broker's stop
    }

    [Test]
    public async Task TheHostsGiveUp_AlsoReachesSubscriptionsMadeWithSubscribe()
    {
        var gate = new HandlerGate();
        var time = new ManualTimeProvider(); // the broker's own shutdown timeout never passes
        using var host = Host(s => s.AddSingleton(gate).AddSingleton<TimeProvider>(time)
            .AddMessageQueue(mq => mq.AddQueue("work"))
            .AddHostedService<SubscribingWorker>());
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await broker.SendAsync("work", new Order(1));
        await gate.Started.WaitAsync().WithSafety();

        using var giveUp = new CancellationTokenSource();
        await giveUp.CancelAsync(); // the host's shutdown timeout has passed
        var armedBefore = time.ActiveTimers;
        var stopping = host.StopAsync(giveUp.Token);
        try
        {
            // Either the stop ends (the host's token honoured), or the broker arms a timer for its own 30 s wait.
            await Task.WhenAny(stopping, time.WaitForArmedTimersAsync(armedBefore + 1));
            Assert.That(stopping.IsCompleted, Is.True, "the host's stop waits on the broker's own shutdown timeout, not the host's token");
            await gate.WaitForCancelledAsync(1);
            Assert.That(gate.Cancelled, Is.EqualTo(new[] { 1 }));
        }
        finally
        {
            time.Advance(TimeSpan.FromSeconds(31)); // let the broker's timeout pass so the host can be disposed
            await stopping.WithSafety();
        }
    }
}

/// <summary>Review follow-ups without a fault to show before: filters on a queue's Redelivery are refused (a nack
/// has no exception), and dead-letter queues are not checked for the age of their head message.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class Review13FollowUpTests
{
    [Test]
    public void RedeliveryWithExceptionFilters_IsRefused_NamingWhereFiltersBelong()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder()
            .AddQueue("q", o => o.Redelivery = RetryPolicy.Immediate(2).DeadLetterOn<ArgumentException>()).Build());
        Assert.That(ex!.Message, Does.Contain("Queue 'q' has a Redelivery policy with exception filters (Immediate(2).DeadLetterOn<ArgumentException>()); a nack has no exception, so they would be ignored. Set them on the subscription's Retry."));
    }

    [Test]
    public async Task HeadMessageAge_SkipsDeadLetterQueues()
    {
        var time = new ManualTimeProvider();
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<TimeProvider>(time)
            .AddMessageQueue(mq => mq.AddQueue("dead").AddQueue("work", q => q.DeadLetterQueue = "dead"));
        builder.Services.AddHealthChecks().AddMessageQueue(o => o.MaxHeadMessageAge = TimeSpan.FromMinutes(1));
        using var host = builder.Build();
        await host.StartAsync().WithSafety();
        await host.Services.GetRequiredService<IProducer>().SendAsync("dead", new Order(1));
        time.Advance(TimeSpan.FromHours(1));

        var report = await host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>().CheckHealthAsync().WithSafety();

        Assert.That(report.Status, Is.EqualTo(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy));
        await host.StopAsync().WithSafety();
    }
}
