using System.Diagnostics;
using System.Diagnostics.Metrics;
using MessageQueue.Queues;
using MessageQueue.Routing;

namespace MessageQueue.Diagnostics;

/// <summary>
/// One broker's instruments on the <c>MessageQueue</c> meter (from the application's <see cref="IMeterFactory"/> under
/// DI, a meter of its own otherwise). Costs nothing while nobody listens: the queues' counts are the lifetime counters
/// they keep anyway (<see cref="QueueInfo"/>), read by observable instruments only when a listener collects; the few
/// instruments recorded as things happen (sends, latencies, durations, commits) are recorded only when enabled, and
/// their clocks are read only then. Tags are bounded: queue and exchange names, reasons, outcomes; never message ids.
/// </summary>
internal sealed class BrokerMetrics : IDisposable
{
    internal const string DestinationTag = "messaging.destination.name";
    internal const string SystemTag = "messaging.system";
    internal const string OperationTag = "messaging.operation.name";
    internal const string ErrorTypeTag = "error.type";
    internal const string ReasonTag = "messagequeue.dead_letter.reason";
    internal const string OutcomeTag = "messagequeue.dead_letter.outcome";

    // Bucket boundaries for durations in seconds: 50 us to 10 s (OpenTelemetry's defaults start at 5 ms, too coarse for
    // an in-process broker).
    private static readonly IReadOnlyList<double> SecondsBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly IReadOnlyList<long> BatchBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

    internal const string BrokerTag = "messagequeue.broker";

    private Topology? _topology; // dropped at dispose (a factory's meter outlives the broker and must not keep its queues); null for a transport's broker
    private readonly bool _ownsMeter;
    private readonly KeyValuePair<string, object?> _broker;
    private readonly KeyValuePair<string, object?> _system = new(SystemTag, MessageQueueTelemetry.MessagingSystem);

    /// <param name="factory">The application's meter factory, or null for a meter of the broker's own.</param>
    /// <param name="topology">The broker's topology, whose queues and exchanges the observable instruments read (null
    /// for a transport's broker: its server keeps those counts).</param>
    /// <param name="brokerName">The broker's name (its <c>AddMessageQueue</c> name; <c>default</c> otherwise): every
    /// measurement carries it as <c>messagequeue.broker</c>, so two brokers of one process (sharing a factory's meter,
    /// or merged by an exporter) report distinct series.</param>
    internal BrokerMetrics(IMeterFactory? factory, Topology? topology, string brokerName)
    {
        _topology = topology;
        _broker = new KeyValuePair<string, object?>(BrokerTag, brokerName);
        var version = typeof(BrokerMetrics).Assembly.GetName().Version?.ToString();
        if (factory is not null)
        {
            Meter = factory.Create(new MeterOptions(MessageQueueTelemetry.MeterName) { Version = version });
        }
        else
        {
            Meter = new Meter(MessageQueueTelemetry.MeterName, version);
            _ownsMeter = true;
        }

        Sent = Meter.CreateCounter<long>("messaging.client.sent.messages", "{message}",
            "Messages an application published or sent (attempts, whether routed or not).");
        ProcessDuration = Meter.CreateHistogram("messaging.process.duration", "s",
            "How long subscription handlers ran on a delivery (failures tagged with error.type).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        DeliveryLatency = Meter.CreateHistogram("messagequeue.delivery.latency", "s",
            "From a message's publish to the moment consumer code took a delivery of it (redeliveries included).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        CommitDuration = Meter.CreateHistogram("messagequeue.store.commit.duration", "s",
            "How long each write of the message store took, its sync included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        CommitSize = Meter.CreateHistogram("messagequeue.store.commit.changes", "{change}",
            "How many changes (inserted rows, deletes, delivery counts, ids) each write of the message store held.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = BatchBuckets });

        PerQueue("messaging.client.consumed.messages", "Deliveries made to consumers (into prefetch windows), redeliveries included.", static i => i.Delivered);
        PerQueue("messagequeue.queue.published", "Messages that entered the queue (published, dead-lettered into it, or redriven).", static i => i.Published);
        PerQueue("messagequeue.queue.acked", "Deliveries acked.", static i => i.Acked);
        PerQueue("messagequeue.queue.nacked", "Deliveries nacked or rejected by consumers (requeued or dead-lettered).", static i => i.Nacked);
        PerQueue("messagequeue.queue.redelivered", "Deliveries that were redeliveries.", static i => i.Redelivered);
        PerQueue("messagequeue.queue.expired", "Messages whose time to live passed in the queue.", static i => i.Expired);
        PerQueue("messagequeue.queue.dropped", "Messages that left for a dead-letter reason with nowhere to go, or damaged rows dropped.", static i => i.Dropped);
        PerQueue("messagequeue.queue.refused", "Messages a full queue refused (reject-publish overflow, or dead letters arriving at a full queue).", static i => i.Rejected);
        PerQueue("messagequeue.queue.duplicates", "Publishes the deduplication window recognised and did not enqueue.", static i => i.Duplicates);
        Meter.CreateObservableCounter("messagequeue.queue.dead_lettered", DeadLettered, "{message}",
            "Messages that left the queue for a dead-letter reason (expired, maxlen, rejected, delivery_limit), by whether they reached a target (routed) or not (dropped).");
        Meter.CreateObservableCounter("messagequeue.exchange.unroutable", Unroutable, "{message}",
            "Publishes to the exchange that reached no queue, its alternate exchange's included (dropped, or refused as mandatory).");
        Gauge("messagequeue.queue.ready", "{message}", "Messages ready for a consumer.", static i => i.Ready);
        Gauge("messagequeue.queue.unacked", "{message}", "Deliveries not settled yet, prefetched ones included.", static i => i.Unacked);
        Gauge("messagequeue.queue.delayed", "{message}", "Messages waiting for a due time.", static i => i.Delayed);
        Gauge("messagequeue.queue.consumers", "{consumer}", "Consumers and subscriptions reading the queue.", static i => i.Consumers);
    }

    internal Meter Meter { get; }

    internal Counter<long> Sent { get; }

    internal Histogram<double> ProcessDuration { get; }

    internal Histogram<double> DeliveryLatency { get; }

    internal Histogram<double> CommitDuration { get; }

    internal Histogram<long> CommitSize { get; }

    /// <summary>Counts a publish or send attempt (when anyone listens).</summary>
    internal void CountSent(string destination, string operation)
    {
        if (Sent.Enabled)
        {
            Sent.Add(1, _system, _broker, new(DestinationTag, destination), new(OperationTag, operation));
        }
    }

    /// <summary>Records the wait of a message from its publish (<paramref name="publishedTicks"/>, UTC) to now on
    /// <paramref name="queue"/>'s clock, when anyone listens (the clock is read only then).</summary>
    internal void RecordDelivery(BrokerQueue queue, long publishedTicks)
    {
        if (DeliveryLatency.Enabled)
        {
            DeliveryLatency.Record(Math.Max(0, queue.ClockTicks - publishedTicks) / (double)TimeSpan.TicksPerSecond,
                _system, _broker, new(DestinationTag, queue.Name));
        }
    }

    /// <summary>Records a handler's run from <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp, 0 when
    /// nobody listened as it began).</summary>
    internal void RecordProcess(string queue, long started, Exception? failure)
    {
        if (started != 0 && ProcessDuration.Enabled)
        {
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            if (failure is null)
            {
                ProcessDuration.Record(seconds, _system, _broker, new(DestinationTag, queue));
            }
            else
            {
                ProcessDuration.Record(seconds, _system, _broker, new(DestinationTag, queue), new(ErrorTypeTag, failure.GetType().FullName));
            }
        }
    }

    /// <summary>A <see cref="Stopwatch"/> timestamp when handler durations are listened to, else 0 (no clock read).</summary>
    internal long ProcessStart() => ProcessDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Whether store writes are listened to (then the writer times them).</summary>
    internal bool TimesCommits => CommitDuration.Enabled || CommitSize.Enabled;

    internal void RecordCommit(long started, int changes)
    {
        CommitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _system, _broker);
        CommitSize.Record(changes, _system, _broker);
    }

    private void PerQueue(string name, string description, Func<QueueInfo, long> value) =>
        Meter.CreateObservableCounter(name, () => Measure(value), "{message}", description);

    private void Gauge(string name, string unit, string description, Func<QueueInfo, int> value) =>
        Meter.CreateObservableGauge(name, () => Measure(value), unit, description);

    private List<Measurement<T>> Measure<T>(Func<QueueInfo, T> value)
        where T : struct
    {
        var measurements = new List<Measurement<T>>();
        if (Volatile.Read(ref _topology) is not { } topology)
        {
            return measurements;
        }

        foreach (var queue in topology.Queues)
        {
            measurements.Add(new Measurement<T>(value(queue.GetInfo()), _system, _broker, new(DestinationTag, queue.Name)));
        }

        return measurements;
    }

    private IEnumerable<Measurement<long>> DeadLettered()
    {
        if (Volatile.Read(ref _topology) is not { } topology)
        {
            return [];
        }

        var measurements = new List<Measurement<long>>();
        foreach (var queue in topology.Queues)
        {
            foreach (var (reason, routed, count) in queue.DeadLetterCounts())
            {
                measurements.Add(new Measurement<long>(count, _system, _broker, new(DestinationTag, queue.Name),
                    new(ReasonTag, reason), new(OutcomeTag, routed ? "routed" : "dropped")));
            }
        }

        return measurements;
    }

    private IEnumerable<Measurement<long>> Unroutable()
    {
        if (Volatile.Read(ref _topology) is not { } topology)
        {
            return [];
        }

        var measurements = new List<Measurement<long>>();
        foreach (var exchange in topology.Exchanges)
        {
            measurements.Add(new Measurement<long>(exchange.UnroutableCount, _system, _broker, new(DestinationTag, exchange.Name)));
        }

        return measurements;
    }

    /// <summary>Stops reporting this broker (its observable instruments read nothing more); disposes the meter when
    /// the broker made it (a factory's meter is the factory's to dispose).</summary>
    public void Dispose()
    {
        Volatile.Write(ref _topology, null); // the observable instruments report nothing more
        if (_ownsMeter)
        {
            Meter.Dispose();
        }
    }
}
