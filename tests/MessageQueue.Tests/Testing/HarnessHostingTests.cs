using MessageQueue.Testing;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Testing;

/// <summary><c>AddMessageQueueTestHarness</c>: the application's own topology and handlers, on a fake clock, with
/// durable queues in memory unless asked otherwise.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class HarnessHostingTests : TempDatabaseFixture
{
    /// <summary>The application's handler: the payment gateway times out.</summary>
    public sealed class PaymentHandler(TimeProvider time) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken) =>
            throw new TimeoutException($"gateway timed out at {time.GetUtcNow():HH:mm:ss}");
    }

    private IHost Host(Action<MessageQueueTestHarnessOptions>? harness = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddMessageQueue(mq => mq // the application's registration, unchanged
            .AddQueue("payments.dead", q => q.Durable = true)
            .AddQueue("payments", q => { q.Durable = true; q.DeadLetterQueue = "payments.dead"; })
            .AddHandler<Order, PaymentHandler>("payments", o => o.Retry = RetryPolicy.Exponential(2, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1)))
            .UseSqlite(Database));
        builder.Services.AddMessageQueueTestHarness(harness); // the test's addition
        return builder.Build();
    }

    [Test]
    public async Task TheApplicationsHandler_RetriesThenDeadLetters_OnTheHarnessClock_WithoutADatabase()
    {
        using var host = Host();
        await host.StartAsync().WithSafety();
        var harness = host.Services.GetRequiredService<MessageQueueTestHarness>();

        await host.Services.GetRequiredService<IProducer>().SendAsync("payments", new Order(1));
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromSeconds(1));
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromSeconds(2));
        var dead = await harness.DeadLettered.AnyAsync<Order>();
        await harness.WaitForIdleAsync();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(harness.Delivered.Exactly<Order>(3).Select(d => d.DeliveryCount), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(dead.Exception?.Message, Is.EqualTo("gateway timed out at 00:00:03"), "the application's code saw the harness clock");
            Assert.That(host.Services.GetRequiredService<TimeProvider>(), Is.SameAs(harness.Time));
            Assert.That(File.Exists(Database), Is.False, "durable queues were kept in memory");
        }

        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task KeepStore_UsesTheApplicationsStore()
    {
        using (var host = Host(o => o.KeepStore = true))
        {
            await host.StartAsync().WithSafety();
            await host.Services.GetRequiredService<IProducer>().SendAsync("payments.dead", new Order(2));
            await host.StopAsync().WithSafety();
        }

        Assert.That(File.Exists(Database), Is.True);
        using var again = Host(o => o.KeepStore = true);
        await again.StartAsync().WithSafety();
        Assert.That((await again.Services.GetRequiredService<IBrokerManagement>().PeekAsync("payments.dead")).Select(m => m.Body), Is.EqualTo(new object[] { new Order(2) }));
        await again.StopAsync().WithSafety();
    }
}
