using System.Diagnostics.Metrics;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace MessageQueue.Tests.Diagnostics;

/// <summary>Issue 17, point 1: the <c>MessageQueue</c> meter's instruments, with exact values after a scripted
/// scenario, read through a <see cref="MeterListener"/> scoped to the broker's own meter.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class MetricsTests
{
    [Test]
    public async Task AScriptedScenario_IsCountedExactly_ByQueueExchangeAndReason()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder()
            .UseTimeProvider(time)
            .AddExchange("ex", ExchangeType.Direct)
            .AddQueue("dead")
            .AddQueue("q", o => o.DeadLetterQueue = "dead")
            .AddQueue("ttl", o => { o.MessageTtl = TimeSpan.Zero; o.DeadLetterQueue = "dead"; })
            .Bind("ex", "q", "k")
            .Build();
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);

        for (var i = 0; i < 3; i++)
        {
            await broker.PublishAsync("ex", "k", new Order(i));
        }

        await broker.PublishAsync("ex", "nowhere", new Order(9));        // unroutable
        await broker.SendAsync("ttl", new Order(10));                      // expires at once, dead-lettered
        time.Advance(TimeSpan.FromSeconds(2));                             // the three wait 2 s in q

        await using (var consumer = broker.Consume<Order>("q"))
        {
            var first = await consumer.ReceiveAsync();
            var second = await consumer.ReceiveAsync();
            var third = await consumer.ReceiveAsync();
            await first.AckAsync();
            await second.NackAsync(requeue: true);
            await third.RejectAsync("bad");
            var again = await consumer.ReceiveAsync();                     // the nacked one, redelivered at once
            Assert.That(again.Redelivered, Is.True);
            await again.AckAsync();
        }

        var collected = metrics.Collect();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(metrics.Of("messaging.client.sent.messages").Where(m => m.Tag("messaging.destination.name") == "ex").Sum(m => m.Value), Is.EqualTo(4));
            Assert.That(metrics.Of("messaging.client.sent.messages").Where(m => m.Tag("messaging.destination.name") == "ttl").Select(m => m.Tag("messaging.operation.name")), Is.EqualTo(new[] { "send" }));
            Assert.That(collected.Value("messagequeue.queue.published", "q"), Is.EqualTo(3));
            Assert.That(collected.Value("messaging.client.consumed.messages", "q"), Is.EqualTo(4), "three deliveries and one redelivery");
            Assert.That(collected.Value("messagequeue.queue.acked", "q"), Is.EqualTo(2));
            Assert.That(collected.Value("messagequeue.queue.nacked", "q"), Is.EqualTo(2), "a nack and a reject");
            Assert.That(collected.Value("messagequeue.queue.redelivered", "q"), Is.EqualTo(1));
            Assert.That(collected.Value("messagequeue.queue.dead_lettered", "q", ("messagequeue.dead_letter.reason", "rejected"), ("messagequeue.dead_letter.outcome", "routed")), Is.EqualTo(1));
            Assert.That(collected.Value("messagequeue.queue.dead_lettered", "ttl", ("messagequeue.dead_letter.reason", "expired"), ("messagequeue.dead_letter.outcome", "routed")), Is.EqualTo(1));
            Assert.That(collected.Value("messagequeue.queue.expired", "ttl"), Is.EqualTo(1));
            Assert.That(collected.Value("messagequeue.queue.published", "dead"), Is.EqualTo(2));
            Assert.That(collected.Value("messagequeue.queue.ready", "dead"), Is.EqualTo(2));
            Assert.That(collected.Value("messagequeue.queue.ready", "q"), Is.EqualTo(0));
            Assert.That(collected.Value("messagequeue.queue.unacked", "q"), Is.EqualTo(0));
            Assert.That(collected.Value("messagequeue.exchange.unroutable", "ex"), Is.EqualTo(1));
            Assert.That(collected.Value("messagequeue.queue.dropped", "q"), Is.EqualTo(0));
            Assert.That(collected.Where(m => m.Name == "messagequeue.queue.dead_lettered" && m.Tag("messaging.destination.name") == "q").Count(), Is.EqualTo(1), "only the reasons that happened");
            Assert.That(metrics.Of("messagequeue.delivery.latency").Where(m => m.Tag("messaging.destination.name") == "q").Select(m => m.Value), Is.EqualTo(new[] { 2.0, 2.0, 2.0, 2.0 }), "published 2 s before they were taken (on the broker's clock)");
            Assert.That(metrics.Of("messagequeue.delivery.latency").Select(m => m.Unit).Distinct(), Is.EqualTo(new[] { "s" }));
            Assert.That(collected.Concat(metrics.Measurements).SelectMany(m => m.Tags.Keys).Distinct(), Is.SubsetOf(new[]
            {
                "messaging.system", "messagequeue.broker", "messaging.destination.name", "messaging.operation.name", "messagequeue.dead_letter.reason", "messagequeue.dead_letter.outcome", "error.type",
            }), "bounded tags only: no message ids");
        }
    }

    [Test]
    public async Task HandlerDurations_AreRecorded_FailuresTaggedWithTheExceptionType()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("h", o => o.DeadLetterQueue = "dead").Build();
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);
        await using var sub = broker.Subscribe<Order>("h", async (d, ct) =>
        {
            await Task.Delay(20, ct);
            if (d.Message.Id == 1)
            {
                throw new InvalidOperationException("no");
            }
        }, o => o.Retry = RetryPolicy.None);
        await broker.SendAsync("h", new Order(0));
        await broker.SendAsync("h", new Order(1));
        await broker.WaitForQueueAsync("h", i => i.Acked + i.DeadLettered == 2);

        var durations = metrics.Of("messaging.process.duration");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(durations, Has.Count.EqualTo(2));
            Assert.That(durations.Select(d => d.Tag("error.type")), Is.EquivalentTo(new[] { null, "System.InvalidOperationException" }));
            Assert.That(durations.Select(d => d.Value), Is.All.GreaterThanOrEqualTo(0.015), "each handler waited 20 ms");
            Assert.That(durations.Select(d => d.Tag("messaging.destination.name")), Is.All.EqualTo("h"));
        }
    }

    [Test]
    public async Task WithNobodyListening_NothingIsRecorded_AndTheMeterIsTheBrokers()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var instruments = broker.Engine().Context.Metrics;
        await broker.SendAsync("q", new Order(1));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(instruments.Sent.Enabled, Is.False);
            Assert.That(instruments.DeliveryLatency.Enabled, Is.False);
            Assert.That(instruments.ProcessStart(), Is.Zero, "no clock read for a handler nobody times");
            Assert.That(instruments.Meter.Name, Is.EqualTo(MessageQueue.Diagnostics.MessageQueueTelemetry.MeterName));
        }
    }

    [Test]
    public async Task UnderDependencyInjection_TheMeterComesFromTheContainersMeterFactory_AndStopsReportingWhenDisposed()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddMessageQueue(b => b.AddQueue("q"));
        Meter meter;
        MetricsRecorder metrics;
        await using (var provider = services.BuildServiceProvider())
        {
            var broker = provider.GetRequiredService<IMessageBroker>();
            meter = broker.Engine().Context.Metrics.Meter;
            var factory = provider.GetRequiredService<IMeterFactory>();
            Assert.That(factory.Create(MessageQueue.Diagnostics.MessageQueueTelemetry.MeterName, meter.Version), Is.SameAs(meter), "the factory's meter");
            metrics = new MetricsRecorder(meter);
            await broker.SendAsync("q", new Order(1));
            Assert.That(metrics.Collect().Value("messagequeue.queue.ready", "q"), Is.EqualTo(1));
            await broker.DisposeAsync();
            Assert.That(metrics.Collect().Where(m => m.Name.StartsWith("messagequeue.queue.", StringComparison.Ordinal)), Is.Empty, "a disposed broker reports nothing");
        }

        metrics.Dispose();
    }
}
