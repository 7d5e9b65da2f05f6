using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using MassTransit;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// One producer, one consumer, in memory: how fast messages move from a send to the consumer's code.
/// The baseline is a raw unbounded <see cref="Channel{T}"/> moving the same message objects, measured in
/// the same run; the peer is MassTransit's in-memory transport (send to a receive endpoint whose handler
/// takes one message at a time, prefetch 32, as the MessageQueue subscription), and WolverineFx 6.62's local queue
/// (sequential, in memory: <see cref="WolverinePeer"/>). Each operation moves
/// <see cref="Messages"/> messages; the table reports per message.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class PointToPointBenchmarks
{
    public const int Messages = 100_000;

    private readonly Payload _payload = new(42);
    private IMessageBroker _broker = null!;
    private ISubscription _subscription = null!;
    private IConsumer<Payload> _consumer = null!;
    private TaskCompletionSource _done = new();
    private int _received;
    private MassTransitPeer _massTransit = null!;
    private ISendEndpoint _massTransitEndpoint = null!;
    private WolverinePeer _wolverine = null!;
    private readonly WolverineMessage _wolverineMessage = new(42);

    [GlobalSetup]
    public void Setup()
    {
        _broker = new MessageBrokerBuilder().AddQueue("handler").AddQueue("pull").Build();
        _subscription = _broker.Subscribe<Payload>("handler", (_, _) =>
        {
            if (++_received == Messages)
            {
                _done.SetResult();
            }

            return ValueTask.CompletedTask;
        });
        _consumer = _broker.Consume<Payload>("pull", o => o.Prefetch = 32);
        _massTransit = MassTransitPeer.StartAsync(["mt-p2p"], concurrency: 1).GetAwaiter().GetResult();
        _massTransitEndpoint = _massTransit.EndpointAsync("mt-p2p").GetAwaiter().GetResult();
        _wolverine = WolverinePeer.StartAsync().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _subscription.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _consumer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _massTransit.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _wolverine.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw Channel<T>")]
    public async Task RawChannel()
    {
        var channel = Channel.CreateUnbounded<Payload>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var reader = Task.Run(async () =>
        {
            var r = channel.Reader;
            var count = 0;
            while (await r.WaitToReadAsync().ConfigureAwait(false))
            {
                while (r.TryRead(out _))
                {
                    if (++count == Messages)
                    {
                        return;
                    }
                }
            }
        });
        for (var i = 0; i < Messages; i++)
        {
            channel.Writer.TryWrite(_payload);
        }

        await reader.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue Subscribe handler")]
    public async Task Handler()
    {
        _received = 0;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        for (var i = 0; i < Messages; i++)
        {
            await _broker.SendAsync("handler", _payload).ConfigureAwait(false);
        }

        await _done.Task.ConfigureAwait(false);
    }

    private System.Diagnostics.Metrics.MeterListener? _meterListener;
    private System.Diagnostics.ActivityListener? _activityListener;

    /// <summary>Issue 17: what listening costs. Every MessageQueue instrument enabled (measurements dropped) and, for
    /// the traced row, every span sampled with all data (dropped when stopped), as an OpenTelemetry pipeline without an
    /// exporter would.</summary>
    [IterationSetup(Targets = [nameof(HandlerMetered)])]
    public void Meter()
    {
        _meterListener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == MessageQueue.Diagnostics.MessageQueueTelemetry.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _meterListener.SetMeasurementEventCallback<long>(static (_, _, _, _) => { });
        _meterListener.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
        _meterListener.Start();
    }

    [IterationSetup(Targets = [nameof(HandlerTraced)])]
    public void MeterAndTrace()
    {
        Meter();
        _activityListener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = s => s.Name == MessageQueue.Diagnostics.MessageQueueTelemetry.ActivitySourceName,
            Sample = static (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(_activityListener);
    }

    [IterationCleanup(Targets = [nameof(HandlerMetered), nameof(HandlerTraced)])]
    public void StopListening()
    {
        _meterListener?.Dispose();
        _activityListener?.Dispose();
        _meterListener = null;
        _activityListener = null;
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue Subscribe handler, metrics listened to")]
    public Task HandlerMetered() => Handler();

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue Subscribe handler, metrics and every span listened to")]
    public Task HandlerTraced() => Handler();

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue pull + manual ack")]
    public async Task PullManualAck()
    {
        var reader = Task.Run(async () =>
        {
            for (var i = 0; i < Messages; i++)
            {
                var d = await _consumer.ReceiveAsync().ConfigureAwait(false);
                await d.AckAsync().ConfigureAwait(false);
            }
        });
        for (var i = 0; i < Messages; i++)
        {
            await _broker.SendAsync("pull", _payload).ConfigureAwait(false);
        }

        await reader.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MassTransit in-memory")]
    public async Task MassTransit()
    {
        var done = _massTransit.Expect(Messages);
        for (var i = 0; i < Messages; i++)
        {
            await _massTransitEndpoint.Send(_payload).ConfigureAwait(false);
        }

        await done.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "Wolverine local queue")]
    public async Task Wolverine()
    {
        var done = _wolverine.Expect(Messages);
        for (var i = 0; i < Messages; i++)
        {
            await _wolverine.Bus.SendAsync(_wolverineMessage).ConfigureAwait(false);
        }

        await done.ConfigureAwait(false);
    }
}

/// <summary>The message the benchmarks move (allocated once: only the broker's own allocations are measured).</summary>
public sealed record Payload(int Value);
