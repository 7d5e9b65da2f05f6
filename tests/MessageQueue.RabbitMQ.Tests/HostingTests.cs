using System.Diagnostics;
using System.Diagnostics.Metrics;
using MessageQueue.Diagnostics;
using MessageQueue.RabbitMQ.Tests.Contract;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 6: the transport from configuration (a connection string by name), its health check, and
/// traces and metrics carried through RabbitMQ (the W3C context in the message's headers). The health check when the
/// connection is down: <c>RecoveryTests</c>.</summary>
public sealed class HostingTests : BackendFixture
{
    public sealed record Order(int Id);

    protected override bool OnRabbitMq => true;

    private static IConfiguration Configuration(string? url) =>
        new ConfigurationBuilder().AddInMemoryCollection(url is null ? [] : [new("ConnectionStrings:Orders", url)]).Build();

    [Test]
    public async Task FromAConnectionStringByName_TheHostRunsOnRabbitMq_AndItsHealthCheckSaysConnected()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection([new("ConnectionStrings:Orders", RabbitMqNode.RequireUrl().ToString())]);
        var queue = N("q");
        var handled = new TaskCompletionSource<Order>(TaskCreationOptions.RunContinuationsAsynchronously);
        builder.Services.AddMessageQueue((provider, mq) => mq
            .AddQueue(queue)
            .UseRabbitMq(provider.GetRequiredService<IConfiguration>(), "Orders"));
        builder.Services.AddHealthChecks().AddMessageQueue();
        using var host = builder.Build();
        await host.StartAsync();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        await using (broker.Subscribe<Order>(queue, (d, _) => { handled.TrySetResult(d.Message); return ValueTask.CompletedTask; }))
        {
            await broker.SendAsync(queue, new Order(1));
            Assert.That(await handled.Task.WaitAsync(Patience), Is.EqualTo(new Order(1)));
        }

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.That((health.Status, health.Entries.Single().Value.Description), Is.EqualTo((HealthStatus.Healthy, "Connected to the RabbitMQ server at amqp://127.0.0.1:5682/.")));
        await host.StopAsync();
    }

    [Test]
    public void AMissingOrBadConnectionString_IsRefusedNamingTheSetting()
    {
        var missing = Assert.Throws<ArgumentException>(() => new MessageBrokerBuilder().UseRabbitMq(Configuration(null), "Orders"));
        var bad = Assert.Throws<ArgumentException>(() => new MessageBrokerBuilder().UseRabbitMq(Configuration("http://user:secret@host/"), "Orders"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(missing!.Message, Does.Contain("ConnectionStrings:Orders"));
            Assert.That(bad!.Message, Does.Contain("ConnectionStrings:Orders").And.Not.Contain("secret"));
        }
    }

    [Test]
    public async Task OneTrace_SpansThePublish_AndTheHandler_OnTheServer_AndSendsAreCounted()
    {
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == MessageQueueTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (spans) { spans.Add(a); } },
        };
        ActivitySource.AddActivityListener(listener);
        long sent = 0;
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == MessageQueueTelemetry.MeterName && instrument.Name == "messaging.client.sent.messages")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref sent, value));
        meters.Start();

        var broker = Build(b => b.AddExchange(N("x"), ExchangeType.Direct).AddQueue(N("q")).Bind(N("x"), N("q"), "k"));
        var seen = new TaskCompletionSource<(string? TraceParent, ActivityTraceId Current)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = broker.Subscribe<Order>(N("q"), (d, _) =>
        {
            seen.TrySetResult((d.Properties.Headers.TryGetValue("traceparent", out var tp) ? tp as string : null, Activity.Current!.TraceId));
            return ValueTask.CompletedTask;
        });
        using (var request = new Activity("request").Start())
        {
            await broker.PublishAsync(N("x"), "k", new Order(1));
        }

        var (traceParent, handlerTrace) = await seen.Task.WaitAsync(Patience);
        Activity publish, process;
        lock (spans)
        {
            publish = spans.Single(s => s.DisplayName == $"publish {N("x")}");
        }

        while (true)
        {
            lock (spans)
            {
                if (spans.FirstOrDefault(s => s.DisplayName == $"process {N("q")}") is { } p)
                {
                    process = p;
                    break;
                }
            }

            await Task.Yield(); // the handler's span ends just after it returns; the test's patience bounds this
            Patience.ThrowIfCancellationRequested();
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(traceParent, Is.EqualTo(publish.Id), "the producer span's context travels in the message's headers");
            Assert.That((handlerTrace, process.TraceId), Is.EqualTo((publish.TraceId, publish.TraceId)));
            Assert.That(process.ParentSpanId, Is.EqualTo(publish.SpanId));
            Assert.That(Interlocked.Read(ref sent), Is.EqualTo(1));
        }
    }
}
