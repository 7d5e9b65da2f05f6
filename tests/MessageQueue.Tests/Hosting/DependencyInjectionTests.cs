using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

[TestFixture]
[CancelAfter(30_000)]
public sealed class DependencyInjectionTests : TempDatabaseFixture
{
    private static IHost Host(Action<IServiceCollection> configure) => TestHosts.Build(configure);

    [Test]
    public async Task UseSqlite_OnTheDiBuilder_DurableMessagesSurviveAHostRestart()
    {
        void Configure(IServiceCollection services) => services.AddMessageQueue(mq => mq
            .AddQueue("billing", q => q.Durable = true)
            .UseSqlite(Database, o => o.Synchronous = SqliteSynchronous.Normal));

        using (var host = Host(Configure))
        {
            await host.StartAsync().WithSafety();
            var producer = host.Services.GetRequiredService<IProducer>();
            await producer.SendAsync("billing", new Order(7)).AsTask().WithSafety();
            Assert.That(host.Services.GetRequiredService<IMessageBroker>(), Is.SameAs(producer));
            await host.StopAsync().WithSafety();
        }

        using var restarted = Host(Configure);
        await restarted.StartAsync().WithSafety();
        var broker = restarted.Services.GetRequiredService<IMessageBroker>();
        var peeked = await broker.Management.PeekAsync("billing");
        Assert.That(peeked.Select(m => m.Body), Is.EqualTo(new object[] { new Order(7) }));
        await restarted.StopAsync().WithSafety();
    }

    [Test]
    public async Task TheBackendNeutralTypes_AreRegistered_AndTheEngineTypeIsNot()
    {
        using var host = Host(s => s.AddMessageQueue(mq => mq.AddQueue("q")));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        Assert.Multiple(() =>
        {
            Assert.That(host.Services.GetRequiredService<IProducer>(), Is.SameAs(broker));
            Assert.That(host.Services.GetRequiredService<IBrokerManagement>(), Is.SameAs(broker.Management));
            Assert.That(typeof(IMessageBroker).Assembly.GetType("MessageQueue.MessageBroker")!.IsPublic, Is.False, "users depend on IMessageBroker, whatever the backend");
            Assert.That(typeof(MessageBrokerBuilder).GetMethod(nameof(MessageBrokerBuilder.Build))!.ReturnType, Is.EqualTo(typeof(IMessageBroker)));
        });
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task TheContainersClock_IsTheBrokersClock()
    {
        var time = new ManualTimeProvider();
        using var host = Host(s => s.AddSingleton<TimeProvider>(time).AddMessageQueue(mq => mq.AddQueue("q")));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromMinutes(1) });
        Assert.That(broker.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "the delay ran on the container's TimeProvider");
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task NamedBrokers_AreIsolated_AndNeedANonEmptyName()
    {
        using var host = Host(s => s
            .AddMessageQueue("tenant-a", mq => mq.AddQueue("q"))
            .AddMessageQueue("tenant-b", mq => mq.AddQueue("q")));
        await host.StartAsync().WithSafety();
        var a = host.Services.GetRequiredKeyedService<IProducer>("tenant-a");
        var b = host.Services.GetRequiredKeyedService<IMessageBroker>("tenant-b");
        await a.SendAsync("q", new Order(1));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(b, Is.Not.SameAs(a));
            Assert.That(((IMessageBroker)a).Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
            Assert.That(b.Management.GetQueueInfo("q").Ready, Is.Zero);
            Assert.That(host.Services.GetService<IProducer>(), Is.Null, "no unnamed broker was registered");
        }

        Assert.Throws<ArgumentException>(() => new ServiceCollection().AddMessageQueue(" ", _ => { }));
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task ABrokenTopology_StopsTheHostAtStart()
    {
        using var host = Host(s => s.AddMessageQueue(mq => mq.Bind("nowhere", "q")));
        var ex = await Assert.ThrowsAsync<TopologyException>(() => host.StartAsync());
        Assert.That(ex!.Message, Does.Contain("nowhere"));
    }
}
