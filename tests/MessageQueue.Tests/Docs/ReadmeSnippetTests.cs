using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MessageQueue.Diagnostics;
using MessageQueue.Testing;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Docs;

/// <summary>
/// Every short example in the README's concepts section is a region of this file (between
/// <c>// snippet:NAME:start</c> and <c>// snippet:NAME:end</c>), run by a test that checks what the README says
/// it does. <see cref="Readme_Snippets_MatchThisFile"/> fails when the two drift apart.
/// </summary>
[TestFixture]
[CancelAfter(20_000)]
public sealed partial class ReadmeSnippetTests : TempDatabaseFixture
{
    public sealed record Reminder(int Id);

    public sealed record Thumbnail(int Id);

    public sealed record Payment(string AccountId, int Amount);

    [Test]
    public async Task Delay()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("reminders").Build();
        // snippet:delay:start
        await broker.SendAsync("reminders", new Reminder(7), new PublishOptions { Delay = TimeSpan.FromMinutes(15) });
        // snippet:delay:end
        Assert.That(broker.Management.GetQueueInfo("reminders").Delayed, Is.EqualTo(1));
        time.Advance(TimeSpan.FromMinutes(15));
        Assert.That(broker.Management.GetQueueInfo("reminders").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task Ttl()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("quotes.expired")
            // snippet:ttl:start
            .AddQueue("quotes", q => { q.MessageTtl = TimeSpan.FromSeconds(30); q.DeadLetterQueue = "quotes.expired"; })
            // snippet:ttl:end
            .Build();
        await broker.SendAsync("quotes", 1.25m);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.That(broker.Management.GetQueueInfo("quotes.expired").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task Priority()
    {
        await using var broker = new MessageBrokerBuilder()
            // snippet:priority:start
            .AddQueue("jobs", q => q.MaxPriority = 10)
            // snippet:priority:end
            .Build();
        await broker.SendAsync("jobs", "batch report");
        await broker.SendAsync("jobs", "password reset", new PublishOptions { Priority = 9 });
        var first = (await broker.Management.PeekAsync("jobs"))[0];
        Assert.That(first.Body, Is.EqualTo("password reset"));
    }

    [Test]
    public async Task LengthLimits()
    {
        await using var broker = new MessageBrokerBuilder()
            // snippet:length:start
            .AddQueue("thumbnails", q => { q.MaxLength = 1_000; q.Overflow = OverflowPolicy.Block; })  // publishers wait
            .AddQueue("telemetry", q => { q.MaxLengthBytes = 64 * 1024 * 1024; })                     // oldest dropped
            .AddQueue("payments", q => { q.MaxLength = 10_000; q.Overflow = OverflowPolicy.RejectPublish; })
            // snippet:length:end
            .Build();
        for (var i = 0; i < 1_000; i++)
        {
            await broker.SendAsync("thumbnails", new Thumbnail(i));
        }

        var blocked = broker.SendAsync("thumbnails", new Thumbnail(1_000)).AsTask();
        Assert.That(blocked.IsCompleted, Is.False);
        await broker.Management.PurgeAsync("thumbnails");
        await blocked.WithSafety();
        Assert.That(broker.Management.GetQueueInfo("thumbnails").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task Ordering()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("payments").Build();
        var seen = new List<int>();
        // snippet:ordering:start
        await using var subscription = broker.Subscribe<Payment>("payments", async (delivery, ct) =>
        {
            await ApplyAsync(delivery.Message, ct); // one account's payments run one at a time, in order
        }, o => { o.Concurrency = 8; o.OrderingKey = d => d.Message.AccountId; });
        // snippet:ordering:end
        for (var i = 0; i < 20; i++)
        {
            await broker.SendAsync("payments", new Payment("acct-1", i));
        }

        await broker.WaitForQueueAsync("payments", i => i.Acked == 20);
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 20)));

        async ValueTask ApplyAsync(Payment payment, CancellationToken ct)
        {
            await Task.Yield();
            lock (seen)
            {
                seen.Add(payment.Amount);
            }
        }
    }

    [Test]
    public async Task Deduplication()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddQueue("payments", q => q.DeduplicationWindow = TimeSpan.FromMinutes(10))
            .Build();
        var payment = new Payment("acct-1", 100);
        // snippet:dedup:start
        var options = new PublishOptions { MessageId = "payment-8421" };
        await broker.SendAsync("payments", payment, options);
        PublishResult again = await broker.SendAsync("payments", payment, options); // a retried request
        // again.IsDuplicate == true: the queue holds the payment once
        // snippet:dedup:end
        Assert.That(again.IsDuplicate, Is.True);
        Assert.That(broker.Management.GetQueueInfo("payments").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task Transactions()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("orders", ExchangeType.Topic)
            .AddQueue("billing")
            .AddQueue("shipping")
            .Bind("orders", "billing", "order.#")
            .Bind("orders", "shipping", "order.paid")
            .Build();
        var orders = new[] { new Order(1), new Order(2) };
        // snippet:transaction:start
        await using (IPublishTransaction tx = broker.BeginTransaction())
        {
            await tx.PublishAsync("orders", "order.paid", new Order(42));
            await tx.SendAsync("billing", new Invoice(42));
            await tx.CommitAsync(); // both appear now, together; without the commit, neither would
        }

        await broker.PublishBatchAsync("orders", "order.created", orders); // the one-call form
        // snippet:transaction:end
        Assert.That(broker.Management.GetQueueInfo("billing").Ready, Is.EqualTo(4));
        Assert.That(broker.Management.GetQueueInfo("shipping").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task Durable()
    {
        var connectionString = $"Data Source={Database}";
        for (var run = 1; run <= 2; run++)
        {
            // snippet:durable:start
            await using var broker = new MessageBrokerBuilder()
                .UseSqlite(connectionString)                      // one database file per broker
                .AddQueue("billing", q => q.Durable = true)      // persistent messages survive a crash
                .Build();                                        // recovers what the file holds
            // snippet:durable:end
            if (run == 1)
            {
                await broker.SendAsync("billing", new Invoice(1)); // on disk when this returns
            }
            else
            {
                Assert.That(broker.Management.GetQueueInfo("billing").Ready, Is.EqualTo(1));
            }
        }
    }

    [Test]
    public async Task Lazy()
    {
        var connectionString = $"Data Source={Database}";
        // snippet:lazy:start
        await using var broker = new MessageBrokerBuilder()
            .UseSqlite(connectionString, o => o.LazyWindow = 256) // ready messages kept in memory
            .AddQueue("imports", q => q.Mode = QueueMode.Lazy)    // any backlog, bounded memory
            .Build();
        // snippet:lazy:end
        await broker.PublishBatchAsync("", "imports", Enumerable.Range(0, 1000).Select(i => new Invoice(i)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("imports").Ready, Is.EqualTo(1000));
            Assert.That(broker.Engine().Context.Topology.GetQueue("imports").InMemoryReady, Is.EqualTo(256));
        }
    }

    /// <summary>The README's DI handler: a scoped service per message.</summary>
    public sealed class InvoiceHandler(InvoiceLedger ledger) : IMessageHandler<Invoice>
    {
        public ValueTask HandleAsync(Delivery<Invoice> delivery, CancellationToken cancellationToken)
        {
            ledger.Record(delivery.Message.Number);
            return ValueTask.CompletedTask;
        }
    }

    public sealed class InvoiceLedger
    {
        public System.Collections.Concurrent.ConcurrentQueue<int> Numbers { get; } = new();

        public void Record(int number) => Numbers.Enqueue(number);
    }

    [Test]
    public async Task DependencyInjection()
    {
        var connectionString = $"Data Source={Database}";
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<InvoiceLedger>();
        // snippet:di:start
        builder.Services.AddMessageQueue(mq => mq
            .AddQueue("billing", q => q.Durable = true)
            .AddHandler<Invoice, InvoiceHandler>("billing", o => o.Retry = RetryPolicy.Immediate(3).DeadLetterOn<ArgumentException>())
            .UseSqlite(connectionString));
        builder.Services.AddHealthChecks().AddMessageQueue(o => o.MaxHeadMessageAge = TimeSpan.FromMinutes(5));
        // inject IProducer (or IMessageBroker) where the application publishes
        // snippet:di:end
        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<IProducer>().SendAsync("billing", new Invoice(1));
        await host.Services.GetRequiredService<IMessageBroker>().WaitForQueueAsync("billing", i => i.Acked == 1);
        Assert.That(host.Services.GetRequiredService<InvoiceLedger>().Numbers, Is.EqualTo(new[] { 1 }));
        await host.StopAsync();
    }

    [Test]
    public async Task Telemetry()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddMessageQueue(mq => mq.AddQueue("billing"));
        // snippet:telemetry:start
        builder.Services.AddOpenTelemetry()
            .WithMetrics(m => m.AddMeter(MessageQueueTelemetry.MeterName))
            .WithTracing(t => t.AddSource(MessageQueueTelemetry.ActivitySourceName));
        // snippet:telemetry:end
        var spans = new List<System.Diagnostics.Activity>();
        builder.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans));
        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<IProducer>().SendAsync("billing", new Invoice(1));
        host.Services.GetRequiredService<OpenTelemetry.Trace.TracerProvider>().ForceFlush();
        Assert.That(spans.Select(s => s.DisplayName), Is.EqualTo(new[] { "send billing" }));
        await host.StopAsync();
    }

    [Test]
    public async Task RabbitMq()
    {
        var url = Environment.GetEnvironmentVariable("MQ_RABBITMQ_URL") ?? "";
        if (url.Trim().Length == 0)
        {
            Assert.Ignore("No RabbitMQ server: MQ_RABBITMQ_URL is not set (README, The two commands, says how to start one).");
        }

        {
            // snippet:rabbitmq:start
            await using var broker = new MessageBrokerBuilder()
                .UseRabbitMq(url, o => o.DefaultQueueType = RabbitMqQueueType.Quorum) // amqp://user:pass@host:5672/vhost
                .AddQueue("invoices.dead", q => q.Durable = true)
                .AddQueue("invoices", q => { q.Durable = true; q.DeadLetterQueue = "invoices.dead"; q.MaxDeliveryCount = 5; })
                .Build();                                        // connects, declares the topology, or says what conflicts
            // snippet:rabbitmq:end
            await broker.Management.PurgeAsync("invoices");
            await broker.Management.PurgeAsync("invoices.dead");
            await broker.SendAsync("invoices", new Invoice(7));
            await using (var consumer = broker.Consume<Invoice>("invoices", o => o.Prefetch = 1))
            {
                for (var delivery = 1; delivery <= 5; delivery++)
                {
                    var d = await consumer.ReceiveAsync();
                    Assert.That(d.DeliveryCount, Is.EqualTo(delivery), "a quorum queue counts deliveries");
                    await d.NackAsync(requeue: true);
                }
            }

            await using var dead = broker.Consume<Invoice>("invoices.dead");
            var letter = await dead.ReceiveAsync();
            Assert.That((letter.Message, letter.Properties.Deaths[0].Queue, letter.Properties.Deaths[0].Reason), Is.EqualTo((new Invoice(7), "invoices", DeathRecord.DeliveryLimit)));
            await letter.AckAsync();
            await broker.Management.DeleteQueueAsync("invoices");
            await broker.Management.DeleteQueueAsync("invoices.dead");
        }
    }

    [Test]
    public async Task Testing()
    {
        // snippet:testing:start
        await using var harness = new MessageQueueTestHarness(mq => mq
            .AddQueue("billing.dead")
            .AddQueue("billing", q => q.DeadLetterQueue = "billing.dead"));
        await using var subscription = harness.Broker.Subscribe<Invoice>("billing",
            (delivery, ct) => throw new TimeoutException("the gateway is slow"),
            o => o.Retry = RetryPolicy.Exponential(2, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1)));

        await harness.Broker.SendAsync("billing", new Invoice(1));
        await harness.WaitForIdleAsync();              // the first try failed; its retry waits 1 s on the fake clock
        harness.Time.Advance(TimeSpan.FromSeconds(1)); // the second try
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromSeconds(2)); // the third, then the dead letter
        var dead = await harness.DeadLettered.AnyAsync<Invoice>();
        harness.Delivered.Exactly<Invoice>(3);         // throws, listing what was delivered, if not exactly 3
        // snippet:testing:end
        Assert.That((dead.Reason, dead.Exception?.Message), Is.EqualTo(("rejected", "the gateway is slow")));
    }

    [Test]
    public void Readme_Snippets_MatchThisFile()
    {
        var readme = ReadmeText.Readme;
        var source = ReadmeText.TestSource("ReadmeSnippetTests.cs");
        var inReadme = SnippetMarker().Matches(readme).Select(m => m.Groups[1].Value).ToArray();
        var inSource = SourceMarker().Matches(source).Select(m => m.Groups[1].Value).ToArray();
        Assert.That(inReadme, Is.EquivalentTo(inSource), "every README snippet is a region of this file, and every region is in the README");
        foreach (var name in inSource)
        {
            var fromReadme = ReadmeText.Normalize(ReadmeText.Between(readme, $"<!-- snippet:{name}:start -->", $"<!-- snippet:{name}:end -->"));
            var fromTest = ReadmeText.Normalize(ReadmeText.Between(source, $"// snippet:{name}:" + "start", $"// snippet:{name}:" + "end"));
            Assert.That(fromReadme, Is.EqualTo(fromTest), $"README snippet '{name}'");
        }
    }

    [GeneratedRegex(@"<!-- snippet:([a-z]+):start -->")]
    private static partial Regex SnippetMarker();

    [GeneratedRegex(@"// snippet:([a-z]+):start\r?\n")]
    private static partial Regex SourceMarker();
}
