using MessageQueue.Sqlite;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

/// <summary>The broker's health check: healthy, degraded by a nearly full queue or an old head message, unhealthy
/// when the broker stopped or its store fails.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class HealthCheckTests : TempDatabaseFixture
{
    /// <summary>A SQLite store whose writes fail while <see cref="Failing"/> is set.</summary>
    private sealed class SwitchableStore(IMessageStore inner) : IMessageStore
    {
        public volatile bool Failing;

        public StoreContents Open() => inner.Open();

        public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

        public void Write(StoreBatch batch)
        {
            if (Failing)
            {
                throw new MessageStoreException("disk full (simulated)");
            }

            inner.Write(batch);
        }

        public void Dispose() => inner.Dispose();
    }

    private static IHost Host(Action<IServiceCollection> configure, Action<MessageQueueHealthCheckOptions>? health = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        configure(builder.Services);
        builder.Services.AddHealthChecks().AddMessageQueue(health);
        return builder.Build();
    }

    private static async Task<HealthReportEntry> CheckAsync(IHost host) =>
        (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync().WithSafety()).Entries["messagequeue"];

    [Test]
    public async Task Healthy_ThenDegradedWhenAQueuePassesItsShareOfMaxLength_ThenUnhealthyWhenDisposed()
    {
        using var host = Host(s => s.AddMessageQueue(mq => mq.AddQueue("orders", q => q.MaxLength = 10)), o => o.QueueFullShare = 0.5);
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();

        var healthy = await CheckAsync(host);
        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("orders", new Order(i));
        }

        var degraded = await CheckAsync(host);
        await host.StopAsync().WithSafety();
        var hostStopped = await CheckAsync(host); // the broker stays open for services that stop later
        await broker.DisposeAsync(); // as the container does when the host is disposed
        var stopped = await CheckAsync(host);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(healthy.Status, Is.EqualTo(HealthStatus.Healthy));
            Assert.That(healthy.Data["orders"], Is.EqualTo("ready=0 unacked=0 consumers=0"));
            Assert.That(degraded.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(degraded.Description, Is.EqualTo("queue 'orders' holds 5 of its MaxLength 10."));
            Assert.That(hostStopped.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(stopped.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(stopped.Description, Is.EqualTo("The message broker was stopped."));
        }
    }

    [Test]
    public async Task Degraded_WhenTheHeadMessageIsOlderThanAllowed_OnTheContainersClock()
    {
        var time = new ManualTimeProvider();
        using var host = Host(s => s.AddSingleton<TimeProvider>(time).AddMessageQueue(mq => mq.AddQueue("orders")), o => o.MaxHeadMessageAge = TimeSpan.FromMinutes(5));
        await host.StartAsync().WithSafety();
        await host.Services.GetRequiredService<IProducer>().SendAsync("orders", new Order(1));

        time.Advance(TimeSpan.FromMinutes(5));
        var fresh = await CheckAsync(host);
        time.Advance(TimeSpan.FromSeconds(1));
        var old = await CheckAsync(host);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(fresh.Status, Is.EqualTo(HealthStatus.Healthy));
            Assert.That(old.Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(old.Description, Is.EqualTo("the head message of queue 'orders' is 301 s old (more than 300 s)."));
            Assert.That(host.Services.GetRequiredService<IBrokerManagement>().GetQueueInfo("orders").HeadMessageTimestamp, Is.EqualTo(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        }

        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task Unhealthy_WhileTheStoreFails_HealthyAgainOnceAWriteSucceeds()
    {
        SwitchableStore? store = null;
        using var host = Host(s => s.AddMessageQueue(mq => mq
            .AddQueue("orders", q => q.Durable = true)
            .UseStore(() => store = new SwitchableStore(new SqliteMessageStore(Database)))));
        await host.StartAsync().WithSafety();
        var producer = host.Services.GetRequiredService<IProducer>();

        store!.Failing = true;
        await Assert.ThrowsAsync<MessageStoreException>(async () => await producer.SendAsync("orders", new Order(1)));
        var failing = await CheckAsync(host);
        store.Failing = false;
        await producer.SendAsync("orders", new Order(2)).AsTask().WithSafety();
        var recovered = await CheckAsync(host);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(failing.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(failing.Description, Does.StartWith("The message store fails: disk full (simulated)"));
            Assert.That(recovered.Status, Is.EqualTo(HealthStatus.Healthy));
        }

        await host.StopAsync().WithSafety();
    }

    [Test]
    public void InvalidOptions_AreRefusedWhenTheCheckIsAdded()
    {
        var checks = new ServiceCollection().AddHealthChecks();
        Assert.Throws<ArgumentOutOfRangeException>(() => checks.AddMessageQueue(o => o.QueueFullShare = 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => checks.AddMessageQueue(o => o.MaxHeadMessageAge = TimeSpan.Zero));
    }
}
