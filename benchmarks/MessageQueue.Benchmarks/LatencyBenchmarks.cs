using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using MassTransit;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Publish-to-handler latency at a fixed offered rate (<see cref="Rate"/> messages per second, about half of what
/// MassTransit's in-memory transport sustains here; MessageQueue sustains far more). Each message carries the time
/// it was due to be sent, so a sender that falls behind shows up as latency (no coordinated omission). The
/// percentiles (p50, p99, p99.9 columns) cover every message of the iterations after the first three (those
/// include start-up and jitting). Mean and median are per message at this pace, so they only show the pacing.
/// </summary>
[MemoryDiagnoser]
public class LatencyBenchmarks
{
    public const int Rate = 10_000;
    public const int Messages = 2_000;
    private const int SkippedIterations = 3;

    private readonly long[] _latencies = new long[Messages];
    private readonly List<long> _samples = [];
    private int _received;
    private int _iteration;
    private TaskCompletionSource _done = new();
    private IMessageBroker _broker = null!;
    private ISubscription _subscription = null!;
    private MassTransitPeer _massTransit = null!;
    private ISendEndpoint _massTransitEndpoint = null!;

    [GlobalSetup]
    public void Setup()
    {
        _broker = new MessageBrokerBuilder().AddQueue("latency").Build();
        _subscription = _broker.Subscribe<Stamped>("latency", (d, _) =>
        {
            Record(d.Message);
            return ValueTask.CompletedTask;
        });
        _massTransit = MassTransitPeer.StartAsync(["mt-latency"], concurrency: 1, m => Record((Stamped)m)).GetAwaiter().GetResult();
        _massTransitEndpoint = _massTransit.EndpointAsync("mt-latency").GetAwaiter().GetResult();
    }

    [IterationSetup]
    public void NewIteration()
    {
        _received = 0;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [IterationCleanup]
    public void KeepSamples()
    {
        if (++_iteration > SkippedIterations)
        {
            _samples.AddRange(_latencies.AsSpan(0, _received));
        }
    }

    [GlobalCleanup(Target = nameof(MessageQueueHandler))]
    public void ReportMessageQueue() => Cleanup(nameof(MessageQueueHandler));

    [GlobalCleanup(Target = nameof(MassTransit))]
    public void ReportMassTransit() => Cleanup(nameof(MassTransit));

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "MessageQueue Subscribe handler")]
    public Task MessageQueueHandler() => Paced(m => _broker.SendAsync("latency", m).AsTask());

    [Benchmark(OperationsPerInvoke = Messages, Description = "MassTransit in-memory")]
    public Task MassTransit() => Paced(m => _massTransitEndpoint.Send(m));

    private async Task Paced(Func<Stamped, Task> send)
    {
        var gap = Stopwatch.Frequency / Rate;
        var due = Stopwatch.GetTimestamp();
        for (var i = 0; i < Messages; i++)
        {
            var wait = new SpinWait();
            while (Stopwatch.GetTimestamp() < due)
            {
                wait.SpinOnce(sleep1Threshold: -1); // spins, then yields the core (never sleeps a whole millisecond)
            }

            await send(new Stamped(due)).ConfigureAwait(false);
            due += gap;
        }

        await _done.Task.ConfigureAwait(false);
    }

    private void Record(Stamped message)
    {
        var n = Interlocked.Increment(ref _received);
        _latencies[n - 1] = Stopwatch.GetTimestamp() - message.Timestamp;
        if (n == Messages)
        {
            _done.TrySetResult();
        }
    }

    private void Cleanup(string method)
    {
        if (_samples.Count > 0)
        {
            _samples.Sort();
            foreach (var (name, q) in new[] { ("p50-us", 0.50), ("p99-us", 0.99), ("p999-us", 0.999) })
            {
                var ticks = _samples[Math.Min(_samples.Count - 1, (int)Math.Ceiling(q * _samples.Count) - 1)];
                ScenarioMetrics.Report(typeof(LatencyBenchmarks), method, name, ticks * 1_000_000.0 / Stopwatch.Frequency);
            }
        }

        _subscription.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _massTransit.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
