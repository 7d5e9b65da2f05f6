using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using MessageQueue.Tests.Diagnostics;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace MessageQueue.Tests;

/// <summary>
/// Faults found reviewing issue 17 (c6fb4c3: the MessageQueue meter and activity source). Each test fails on
/// bb3dfd4; the comment on each says what goes wrong. (Tests run one at a time in this assembly, so a process-wide
/// activity listener sees only the test's own broker.)
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class Issue17ReviewTests
{
    private static readonly ActivitySource Test = new("MessageQueue.Tests.Issue17Review");

    // Subscription workers are started with Task.Run in Subscribe, so they inherit the subscriber's ExecutionContext,
    // and with it Activity.Current at the time of Subscribe (a startup span, or the request that subscribed). For a
    // message without a trace context (published before anyone listened, by a publisher with no current activity whose
    // publish span was not sampled, or recovered from such a publish), StartConsume passes a default parent, and
    // ActivitySource then takes Activity.Current: every such "process" span, for the subscription's whole life, becomes
    // a child of the subscriber's long ended span, in its trace. Ordered subscriptions' lanes inherit it the same way.
    [TestCase(false)]
    [TestCase(true)]
    public async Task AProcessSpan_OfAMessageWithoutContext_IsNotAChildOfTheSpanThatSubscribed(bool ordered)
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1)); // nobody listens yet: no trace context in the message
        using var spans = new SpanRecorder("MessageQueue.Tests.Issue17Review");

        Activity startup;
        ISubscription subscription;
        using (startup = Test.StartActivity("startup")!)
        {
            subscription = broker.Subscribe<Order>("q", (_, _) => ValueTask.CompletedTask, o =>
            {
                if (ordered)
                {
                    o.OrderingKey = d => d.Message.Kind;
                }
            });
        }

        await using (subscription)
        {
            await broker.WaitForQueueAsync("q", i => i.Acked == 1);
        }

        var process = spans.Single("process q");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(process.TraceId, Is.Not.EqualTo(startup.TraceId), "not in the subscriber's trace");
            Assert.That(process.ParentSpanId, Is.EqualTo(default(ActivitySpanId)), "a root span: the message carries no context");
        }
    }

    // Without a listener, PublishAsync validates the options and routes synchronously: a bad header value (and a
    // mandatory message that matches no queue, and Delay and DeliverAt both set) throws from the call itself. With a
    // listener, PublishAsync returns TracedAsync, an async method: the same errors become a faulted ValueTask. Code that
    // starts several publishes and awaits them later (or wraps only the await in try/catch) behaves differently depending
    // on whether OpenTelemetry is switched on.
    [Test]
    public async Task ABadPublish_FailsTheSameWay_WithAndWithoutATraceListener()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var bad = new PublishOptions { Headers = new Dictionary<string, object?> { ["h"] = new object() } };

        bool ThrowsFromTheCall()
        {
            try
            {
                var pending = broker.PublishAsync("", "q", new Order(1), bad).AsTask();
                _ = pending.Exception; // observed: it failed, but only when awaited
                return false;
            }
            catch (ArgumentException)
            {
                return true;
            }
        }

        var withoutListener = ThrowsFromTheCall();
        bool withListener;
        using (new SpanRecorder("MessageQueue.Tests.Issue17Review"))
        {
            withListener = ThrowsFromTheCall();
        }

        Assert.That(withListener, Is.EqualTo(withoutListener), $"without a listener the call throws: {withoutListener}; with one: {withListener}");
    }

    // An ordered subscription retries in place (BrokerQueue.RedeliverInPlace): a new delivery of the message to the
    // handler, counted in messaging.client.consumed.messages and messagequeue.queue.redelivered, but it does not go
    // through ConsumerCore.TryClaim, where messagequeue.delivery.latency is recorded ("redeliveries included"): the
    // histogram misses every in-place retry, while an unordered subscription's retry (a nack and a redelivery) is in it.
    [Test]
    public async Task AnOrderedSubscriptionsRetry_IsInTheDeliveryLatency_AsItIsInTheConsumedCount()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);
        var attempts = 0;
        await using (broker.Subscribe<Order>("q", (_, _) => ++attempts == 1 ? throw new InvalidOperationException("once") : ValueTask.CompletedTask,
            o => { o.OrderingKey = d => d.Message.Kind; o.Retry = RetryPolicy.Immediate(1); }))
        {
            await broker.SendAsync("q", new Order(1));
            await broker.WaitForQueueAsync("q", i => i.Acked == 1);
        }

        var consumed = metrics.Collect().Value("messaging.client.consumed.messages", "q");
        var latencies = metrics.Of("messagequeue.delivery.latency").Count(m => m.Tag("messaging.destination.name") == "q");
        Assert.That((attempts, consumed), Is.EqualTo((2, 2.0)));
        Assert.That(latencies, Is.EqualTo(2), "one latency per delivery the handler took, the retry included");
    }

    // The same: an unordered subscription's failed attempt that is retried is a nack (Delivery.TryRetry -> Nack), and
    // counted in messagequeue.queue.nacked ("nacked or rejected by consumers: requeued, retried or dead-lettered"); an
    // ordered subscription's retry in place is not counted at all. The same handler failing the same way reports
    // different nack counts depending on whether the subscription is ordered.
    [Test]
    public async Task AFailedAttemptThatIsRetried_IsCountedAsNacked_OrderedOrNot()
    {
        async Task<long> NackedAfterOneFailure(bool ordered)
        {
            await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
            var attempts = 0;
            await using (broker.Subscribe<Order>("q", (_, _) => ++attempts == 1 ? throw new InvalidOperationException("once") : ValueTask.CompletedTask,
                o =>
                {
                    o.Retry = RetryPolicy.Immediate(1);
                    if (ordered)
                    {
                        o.OrderingKey = d => d.Message.Kind;
                    }
                }))
            {
                await broker.SendAsync("q", new Order(1));
                await broker.WaitForQueueAsync("q", i => i.Acked == 1);
            }

            return broker.Management.GetQueueInfo("q").Nacked;
        }

        var unordered = await NackedAfterOneFailure(ordered: false);
        var ordered = await NackedAfterOneFailure(ordered: true);
        Assert.That(ordered, Is.EqualTo(unordered), $"nacked: unordered {unordered}, ordered {ordered}");
    }

    // Publish counts a message that matches no queue in Exchange.CountUnroutable (messagequeue.exchange.unroutable,
    // "publishes that reached no queue"), but a transaction's commit (and PublishBatchAsync, which is one) routes its
    // messages in RouteStaged/RouteOne, which never counts: an unroutable message published in a transaction is counted
    // as sent (Stage counts it) and nowhere else. A mandatory one in a transaction throws without being counted either.
    [Test]
    public async Task AnUnroutableMessage_PublishedInATransaction_IsCountedAsUnroutable()
    {
        await using var broker = new MessageBrokerBuilder().AddExchange("ex", ExchangeType.Direct).AddQueue("q").Bind("ex", "q", "k").Build();
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);

        await broker.PublishAsync("ex", "nowhere", new Order(1));
        var single = metrics.Collect().Value("messagequeue.exchange.unroutable", "ex");
        IReadOnlyList<PublishResult> results;
        await using (var transaction = broker.BeginTransaction())
        {
            await transaction.PublishAsync("ex", "k", new Order(2));
            await transaction.PublishAsync("ex", "nowhere", new Order(3));
            results = await transaction.CommitAsync();
        }

        var afterCommit = metrics.Collect().Value("messagequeue.exchange.unroutable", "ex");
        Assert.That(results.Select(r => r.RoutedQueues), Is.EqualTo(new[] { 1, 0 }));
        Assert.That((single, afterCommit), Is.EqualTo((1.0, 2.0)), "the single publish and the transaction's second message reached no queue");
    }

    // Not from issue 17 (found writing the test above; the same on 1b667f9): a transaction or batch none of whose
    // messages reaches a queue (not mandatory) fails with IndexOutOfRangeException. RouteStaged yields no admission
    // items, and CommitAsync hands the empty array to Admission.RunAsync, which reads items[0].Queue.InFlight. The same
    // messages published one by one each return RoutedQueues = 0.
    [Test]
    public async Task ABatchThatReachesNoQueue_ReturnsItsResults_AsSinglePublishesDo()
    {
        await using var broker = new MessageBrokerBuilder().AddExchange("ex", ExchangeType.Direct).Build();
        var single = await broker.PublishAsync("ex", "nowhere", new Order(1));
        var batch = await broker.PublishBatchAsync("ex", "nowhere", new[] { new Order(2), new Order(3) });
        Assert.That(batch.Select(r => r.RoutedQueues).Prepend(single.RoutedQueues), Is.EqualTo(new[] { 0, 0, 0 }));
    }

    // Named brokers (AddMessageQueue(name, ...)) in one container share its IMeterFactory, and
    // IMeterFactory.Create("MessageQueue", version) returns the same cached Meter to each. Every broker adds its own
    // observable instruments to it, tagged only with queue names: two brokers with a queue of the same name report two
    // values for one series (messaging.destination.name = "q") in one collection, and no attribute says which broker
    // each is. An exporter keeps one of them (or sums them), so each broker's numbers are wrong. (Two brokers without DI
    // each make a Meter named "MessageQueue": OpenTelemetry's AddMeter("MessageQueue") merges them the same way.)
    [Test]
    public async Task TwoNamedBrokers_WithAQueueOfTheSameName_ReportDistinctSeries()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddMessageQueue("a", b => b.AddQueue("q"));
        services.AddMessageQueue("b", b => b.AddQueue("q"));
        await using var provider = services.BuildServiceProvider();
        var a = provider.GetRequiredKeyedService<IMessageBroker>("a");
        var b = provider.GetRequiredKeyedService<IMessageBroker>("b");
        await a.SendAsync("q", new Order(1));
        await b.SendAsync("q", new Order(2));
        await b.SendAsync("q", new Order(3));

        using var metrics = new MetricsRecorder(a.Engine().Context.Metrics.Meter);
        var ready = metrics.Collect().Where(m => m.Name == "messagequeue.queue.ready").ToList();
        var series = ready.Select(m => string.Join(",", m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))).ToList();
        Assert.That(series, Is.Unique, $"one value per series in one collection; got {string.Join(" | ", ready.Select(m => m.Value))} for {string.Join(" | ", series)}");
    }

    // With a meter factory (AddMessageQueue's, or UseMeterFactory), the broker's meter belongs to the factory and is
    // not disposed with the broker; BrokerMetrics.Dispose only sets a flag. The observable instruments stay registered
    // on the factory's meter for the factory's lifetime, and their callbacks hold the BrokerMetrics, which holds the
    // Topology: every queue and every message still in it. A process that builds brokers on one factory (Build again
    // after a failure, as the builder's docs invite, tests, a broker per tenant) keeps each disposed broker alive.
    [Test]
    public void ADisposedBroker_BuiltWithAMeterFactory_IsNotKeptAliveByTheFactorysMeter()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<IMeterFactory>();

        var topology = BuildUseAndDispose(factory);
        for (var i = 0; i < 3 && topology.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.That(topology.IsAlive, Is.False, "the disposed broker's topology (its queues and messages) was collected");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference BuildUseAndDispose(IMeterFactory factory)
    {
        var broker = new MessageBrokerBuilder().UseMeterFactory(factory).AddQueue("q").Build();
        broker.SendAsync("q", new Order(1)).AsTask().GetAwaiter().GetResult();
        var topology = new WeakReference(broker.Engine().Context.Topology);
        broker.Dispose();
        return topology;
    }

    // BrokerMetrics.Gauge gives every gauge the unit "{message}", the consumers gauge included: it counts consumers and
    // subscriptions, and a backend labels and converts it as messages ("{consumer}" per UCUM annotations, as
    // OpenTelemetry's conventions write counts).
    [Test]
    public async Task TheConsumersGauge_IsNotInMessages()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await using var consumer = broker.Consume<Order>("q");
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);
        var consumers = metrics.Collect().Single(m => m.Name == "messagequeue.queue.consumers");
        Assert.That((consumers.Value, consumers.Unit), Is.EqualTo((1.0, "{consumer}")));
    }
}
