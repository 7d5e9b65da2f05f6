using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using MassTransit;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Four producers and four competing consumers on one queue, in memory. Baseline: a raw unbounded
/// <see cref="Channel{T}"/> with four writers and four readers. MessageQueue: four subscriptions (concurrency 1,
/// prefetch 32 each) or four pull consumers with manual acks; MassTransit: one receive endpoint with a concurrent
/// message limit of 4. Each operation moves <see cref="Messages"/> messages; the table reports per message.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class CompetingConsumersBenchmarks
{
    public const int Messages = 100_000;
    private const int Producers = 4;
    private const int Consumers = 4;

    private readonly Payload _payload = new(42);
    private IMessageBroker _broker = null!;
    private readonly List<ISubscription> _subscriptions = [];
    private readonly List<IConsumer<Payload>> _consumers = [];
    private TaskCompletionSource _done = new();
    private int _received;
    private MassTransitPeer _massTransit = null!;
    private ISendEndpoint _massTransitEndpoint = null!;

    [GlobalSetup]
    public void Setup()
    {
        _broker = new MessageBrokerBuilder().AddQueue("handler").AddQueue("pull").Build();
        for (var i = 0; i < Consumers; i++)
        {
            _subscriptions.Add(_broker.Subscribe<Payload>("handler", (_, _) =>
            {
                if (Interlocked.Increment(ref _received) == Messages)
                {
                    _done.SetResult();
                }

                return ValueTask.CompletedTask;
            }));
            _consumers.Add(_broker.Consume<Payload>("pull", o => o.Prefetch = 32));
        }

        _massTransit = MassTransitPeer.StartAsync(["mt-competing"], concurrency: Consumers).GetAwaiter().GetResult();
        _massTransitEndpoint = _massTransit.EndpointAsync("mt-competing").GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var s in _subscriptions)
        {
            s.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        foreach (var c in _consumers)
        {
            c.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _massTransit.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw Channel<T>, 4 writers, 4 readers")]
    public async Task RawChannel()
    {
        var channel = Channel.CreateUnbounded<Payload>();
        var taken = 0;
        var readers = Enumerable.Range(0, Consumers).Select(reader => Task.Run(async () =>
        {
            var r = channel.Reader;
            while (await r.WaitToReadAsync().ConfigureAwait(false))
            {
                while (r.TryRead(out _))
                {
                    if (Interlocked.Increment(ref taken) == Messages)
                    {
                        channel.Writer.TryComplete();
                    }
                }
            }
        })).ToArray();
        await Produce(() => { channel.Writer.TryWrite(_payload); return ValueTask.CompletedTask; }).ConfigureAwait(false);
        await Task.WhenAll(readers).ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue 4 Subscribe handlers")]
    public async Task Handlers()
    {
        _received = 0;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await Produce(async () => await _broker.SendAsync("handler", _payload).ConfigureAwait(false)).ConfigureAwait(false);
        await _done.Task.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue 4 pull consumers + manual ack")]
    public async Task PullManualAck()
    {
        var received = 0;
        using var allReceived = new CancellationTokenSource();
        var readers = _consumers.Select(consumer => Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    // Prefetched messages belong to one consumer, so each reader takes until all are in.
                    var d = await consumer.ReceiveAsync(allReceived.Token).ConfigureAwait(false);
                    await d.AckAsync().ConfigureAwait(false);
                    if (Interlocked.Increment(ref received) == Messages)
                    {
                        await allReceived.CancelAsync().ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (allReceived.IsCancellationRequested)
            {
            }
        })).ToArray();
        await Produce(async () => await _broker.SendAsync("pull", _payload).ConfigureAwait(false)).ConfigureAwait(false);
        await Task.WhenAll(readers).ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MassTransit in-memory, concurrency 4")]
    public async Task MassTransit()
    {
        var done = _massTransit.Expect(Messages);
        await Produce(async () => await _massTransitEndpoint.Send(_payload).ConfigureAwait(false)).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    private static Task Produce(Func<ValueTask> send) => Task.WhenAll(Enumerable.Range(0, Producers).Select(_ => Task.Run(async () =>
    {
        for (var i = 0; i < Messages / Producers; i++)
        {
            await send().ConfigureAwait(false);
        }
    })));
}
