using System.Collections.Concurrent;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

/// <summary>
/// Handlers from dependency injection: a scope per delivery, retries and dead letters as for subscriptions, modules,
/// problems reported together at start, the container's clock and configuration.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class HandlerHostingTests
{
    private static IHost Host(Action<IServiceCollection> configure) => TestHosts.Build(configure);

    /// <summary>A scoped dependency that records its creation and disposal.</summary>
    public sealed class UnitOfWork : IDisposable
    {
        private static int s_next;

        public int Id { get; } = Interlocked.Increment(ref s_next);

        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }

    /// <summary>What the handlers saw, shared by the test.</summary>
    public sealed class Journal
    {
        public ConcurrentQueue<(int Order, UnitOfWork Work, int DeliveryCount)> Seen { get; } = new();
    }

    public sealed class BillingHandler(UnitOfWork work, Journal journal) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken)
        {
            journal.Seen.Enqueue((delivery.Message.Id, work, delivery.DeliveryCount));
            return delivery.Message.Kind == "bad" ? throw new InvalidOperationException($"order {delivery.Message.Id} is bad") : ValueTask.CompletedTask;
        }
    }

    public sealed class NeedsMissingService(IComparer<Order> missing) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public override string ToString() => missing.ToString()!;
    }

    [Test]
    public async Task AddHandler_RunsEachDeliveryInANewScope_DisposedAfterIt_EvenWhenTheHandlerThrows()
    {
        using var host = Host(s => s
            .AddScoped<UnitOfWork>().AddSingleton<Journal>()
            .AddMessageQueue(mq => mq
                .AddQueue("dead").AddQueue("billing", q => q.DeadLetterQueue = "dead")
                .AddHandler<Order, BillingHandler>("billing", o => o.Retry = RetryPolicy.Immediate(1))));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();

        await broker.SendAsync("billing", new Order(1));
        await broker.SendAsync("billing", new Order(2, Kind: "bad"));
        await broker.WaitForQueueAsync("billing", i => i.Acked == 1 && i.DeadLettered == 1);

        var seen = host.Services.GetRequiredService<Journal>().Seen.ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(seen.Select(s => (s.Order, s.DeliveryCount)), Is.EquivalentTo(new[] { (1, 1), (2, 1), (2, 2) }), "the bad order is retried once, then dead-lettered");
            Assert.That(seen.Select(s => s.Work.Id), Is.Unique, "a fresh scoped dependency per delivery");
            Assert.That(seen.Select(s => s.Work.Disposed), Has.All.True, "each scope is disposed after its handler, also when it threw");
            Assert.That((await broker.Management.PeekAsync("dead")).Single().Properties.Headers["x-exception-message"], Is.EqualTo("order 2 is bad"));
        }

        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task Modules_EachAddTheirPart_AndTheCallbackSeesTheContainersConfiguration()
    {
        using var host = Host(s => s
            .AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Billing:Queue"] = "billing" }).Build())
            .AddScoped<UnitOfWork>().AddSingleton<Journal>()
            .AddMessageQueue(mq => mq.AddExchange("orders", ExchangeType.Topic))
            .AddMessageQueue((sp, mq) =>
            {
                var queue = sp.GetRequiredService<IConfiguration>()["Billing:Queue"]!;
                mq.AddQueue(queue).Bind("orders", queue, "order.*").AddHandler<Order, BillingHandler>(queue);
            }));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();

        await broker.PublishAsync("orders", "order.created", new Order(5));
        await broker.WaitForQueueAsync("billing", i => i.Acked == 1);

        Assert.That(host.Services.GetRequiredService<Journal>().Seen.Single().Order, Is.EqualTo(5));
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task StartUp_ReportsEveryProblemOfEveryModule_InOneException()
    {
        using var host = Host(s => s
            .AddScoped<UnitOfWork>().AddSingleton<Journal>()
            .AddMessageQueue(mq => mq.AddQueue("billing", q => q.MaxLength = 10))
            .AddMessageQueue(mq => mq
                .AddQueue("billing", q => q.MaxLength = 20)
                .AddHandler<Order, BillingHandler>("nowhere")
                .AddHandler<Order, NeedsMissingService>("billing", o => o.Concurrency = 0)));

        var ex = await Assert.ThrowsAsync<TopologyException>(() => host.StartAsync());

        Assert.That(ex!.Problems, Has.Count.EqualTo(4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Problems, Has.Some.Contains("'billing' is declared twice"));
            Assert.That(ex.Problems, Has.Some.Contains("Handler 'BillingHandler' of 'Order' on queue 'nowhere' is bound to a queue that is not declared"));
            Assert.That(ex.Problems, Has.Some.Contains("Handler 'NeedsMissingService' of 'Order' on queue 'billing' has Concurrency 0"));
            Assert.That(ex.Problems, Has.Some.Contains("Handler 'NeedsMissingService' of 'Order' on queue 'billing' cannot be created from the services").And.Contains("IComparer"));
        }
    }

    [Test]
    public void Build_WithoutDependencyInjection_RefusesHandlers_NamingTheWayOut()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue("q").AddHandler<Order, BillingHandler>("q").Build());
        Assert.That(ex!.Message, Does.Contain("Handler 'BillingHandler' of 'Order' on queue 'q' needs dependency injection: register the broker with services.AddMessageQueue, or use IMessageBroker.Subscribe."));
        Assert.Throws<ArgumentNullException>(() => new MessageBrokerBuilder().AddHandler<Order, BillingHandler>(null!));
    }

    [Test]
    public async Task TheSystemClock_IsRegisteredWhenTheContainerHasNone_AndARegisteredOneIsKept()
    {
        using (var host = Host(s => s.AddMessageQueue(mq => mq.AddQueue("q"))))
        {
            Assert.That(host.Services.GetRequiredService<TimeProvider>(), Is.SameAs(TimeProvider.System));
        }

        var time = new ManualTimeProvider();
        using var own = Host(s => s.AddMessageQueue(mq => mq.AddQueue("q")).AddSingleton<TimeProvider>(time));
        await own.StartAsync().WithSafety();
        Assert.That(own.Services.GetRequiredService<TimeProvider>(), Is.SameAs(time), "registered after AddMessageQueue, still the one used");
        await own.StopAsync().WithSafety();
    }
}
