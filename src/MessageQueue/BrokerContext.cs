using MessageQueue.Queues;
using MessageQueue.Routing;
using MessageQueue.Scheduling;
using Microsoft.Extensions.Logging;

namespace MessageQueue;

/// <summary>What the parts of one broker share: time, the scheduler, the topology, dead-lettering, logging.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "The stopping source has no timer; it lives as long as the broker and is only cancelled.")]
internal sealed class BrokerContext
{
    internal BrokerContext(TimeProvider time, ILoggerFactory loggerFactory)
    {
        Time = time;
        Clock = new BrokerClock(time);
        Logger = loggerFactory.CreateLogger("MessageQueue");
        Scheduler = new Scheduler(time, Logger);
        Topology = new Topology(this);
        DeadLetters = new DeadLetterRouter(this);
        InFlight = new InFlight(this);
    }

    /// <summary>Exact in-flight tracking: whether any work is left, and an awaitable for when none is.</summary>
    internal InFlight InFlight { get; }

    internal TimeProvider Time { get; }

    /// <summary>Cheap timestamps for the publish path.</summary>
    internal BrokerClock Clock { get; }

    internal Scheduler Scheduler { get; }

    internal Topology Topology { get; }

    internal DeadLetterRouter DeadLetters { get; }

    internal ILogger Logger { get; }

    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the broker stops: background waits (a lazy queue's retry of a failed read) end.</summary>
    internal CancellationToken Stopping => _stopping.Token;

    internal void Stop() => _stopping.Cancel();

    /// <summary>The writer to the message store, when the broker has one (durable queues).</summary>
    internal Storage.DurableLog? Durable { get; set; }

    /// <summary>The broker's instruments on the <c>MessageQueue</c> meter (set when the broker is built).</summary>
    internal Diagnostics.BrokerMetrics Metrics { get; set; } = null!;

    /// <summary>The test harness's observer, or null (see <see cref="IBrokerObserver"/>).</summary>
    internal IBrokerObserver? Observer { get; set; }

    /// <summary>What this broker's backend can honour (queue options are checked against it).</summary>
    internal Backend Backend => KeepsDurableInMemory ? Backend.InMemoryForTests : Durable is null ? Backend.InMemory : Backend.Store;

    /// <summary>A test harness's broker: durable and lazy queues live in memory.</summary>
    internal bool KeepsDurableInMemory { get; init; }

    /// <summary>Queues with stored messages that are not (yet) declared durable, kept for when they are.</summary>
    internal System.Collections.Concurrent.ConcurrentDictionary<string, int> Orphans { get; } = new(StringComparer.Ordinal);

    /// <summary>Deduplication ids remembered by durable queues not declared yet.</summary>
    internal System.Collections.Concurrent.ConcurrentDictionary<string, List<RememberedId>> OrphanIds { get; } = new(StringComparer.Ordinal);
}
