using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// How throughput changes as a broker grows (issue 16, point 9), in memory; each category's first row is its
/// baseline, so a ratio says what the growth costs. Each operation moves <see cref="Messages"/> messages.
/// <list type="bullet">
/// <item><b>queues</b>: 1, 10, 100 or 1,000 queues, each with one handler (concurrency 1, prefetch 32); one publisher
/// sends to them in turn.</item>
/// <item><b>consumers per queue</b>: one queue with 1, 2, 4 or 8 handlers (concurrency 1 each) competing; one
/// publisher.</item>
/// <item><b>backlog</b>: one queue, one pull consumer (prefetch 32, manual ack) and one publisher sending while the
/// consumer receives, with the queue empty, or holding 1,000,000 ready messages that stay ahead of those sent (the
/// consumer takes the oldest, so the backlog stays a million long).</item>
/// </list>
/// Every row has its own broker, made in the setup.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class ScalingBenchmarks
{
    private const int Full = 100_000;
    public static readonly int Messages = Smoke.Scale(Full);
    private static readonly int Backlog = Smoke.Scale(1_000_000);

    private readonly Payload _payload = new(42);
    private readonly Dictionary<string, Setup> _setups = [];

    [GlobalSetup]
    public void GlobalSetup()
    {
        foreach (var queues in new[] { 1, 10, 100, 1_000 })
        {
            _setups[$"queues-{queues}"] = Handlers(queues, consumersPerQueue: 1);
        }

        foreach (var consumers in new[] { 1, 2, 4, 8 })
        {
            _setups[$"consumers-{consumers}"] = Handlers(queues: 1, consumers);
        }

        foreach (var backlog in new[] { 0, Backlog })
        {
            var broker = new MessageBrokerBuilder().AddQueue("q").Build();
            for (var i = 0; i < backlog; i++)
            {
                broker.SendAsync("q", _payload).AsTask().GetAwaiter().GetResult();
            }

            _setups[$"backlog-{backlog}"] = new Setup(broker, ["q"], [], broker.Consume<Payload>("q", o => o.Prefetch = 32));
        }
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        foreach (var setup in _setups.Values)
        {
            setup.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        _setups.Clear();
    }

    [BenchmarkCategory("queues"), Benchmark(Baseline = true, OperationsPerInvoke = Full, Description = "1 queue")]
    public Task Queues1() => SendToAll(_setups["queues-1"]);

    [BenchmarkCategory("queues"), Benchmark(OperationsPerInvoke = Full, Description = "10 queues")]
    public Task Queues10() => SendToAll(_setups["queues-10"]);

    [BenchmarkCategory("queues"), Benchmark(OperationsPerInvoke = Full, Description = "100 queues")]
    public Task Queues100() => SendToAll(_setups["queues-100"]);

    [BenchmarkCategory("queues"), Benchmark(OperationsPerInvoke = Full, Description = "1,000 queues")]
    public Task Queues1000() => SendToAll(_setups["queues-1000"]);

    [BenchmarkCategory("consumers per queue"), Benchmark(Baseline = true, OperationsPerInvoke = Full, Description = "1 consumer")]
    public Task Consumers1() => SendToAll(_setups["consumers-1"]);

    [BenchmarkCategory("consumers per queue"), Benchmark(OperationsPerInvoke = Full, Description = "2 consumers")]
    public Task Consumers2() => SendToAll(_setups["consumers-2"]);

    [BenchmarkCategory("consumers per queue"), Benchmark(OperationsPerInvoke = Full, Description = "4 consumers")]
    public Task Consumers4() => SendToAll(_setups["consumers-4"]);

    [BenchmarkCategory("consumers per queue"), Benchmark(OperationsPerInvoke = Full, Description = "8 consumers")]
    public Task Consumers8() => SendToAll(_setups["consumers-8"]);

    [BenchmarkCategory("backlog"), Benchmark(Baseline = true, OperationsPerInvoke = Full, Description = "empty queue")]
    public Task BacklogEmpty() => SendAndReceive(_setups["backlog-0"]);

    [BenchmarkCategory("backlog"), Benchmark(OperationsPerInvoke = Full, Description = "1,000,000 ready")]
    public Task BacklogMillion() => SendAndReceive(_setups[$"backlog-{Backlog}"]);

    private Setup Handlers(int queues, int consumersPerQueue)
    {
        var builder = new MessageBrokerBuilder();
        var names = Enumerable.Range(0, queues).Select(i => $"q-{i}").ToArray();
        foreach (var name in names)
        {
            builder.AddQueue(name);
        }

        var broker = builder.Build();
        var setup = new Setup(broker, names, [], Consumer: null);
        foreach (var name in names)
        {
            for (var c = 0; c < consumersPerQueue; c++)
            {
                setup.Subscriptions.Add(broker.Subscribe<Payload>(name, (_, _) =>
                {
                    setup.Received();
                    return ValueTask.CompletedTask;
                }, o => o.Prefetch = 32));
            }
        }

        return setup;
    }

    /// <summary>Sends <see cref="Messages"/> messages to the setup's queues in turn and waits until the handlers
    /// have had them all.</summary>
    private async Task SendToAll(Setup setup)
    {
        var done = setup.Expect(Messages);
        var queues = setup.Queues;
        for (var i = 0; i < Messages; i++)
        {
            await setup.Broker.SendAsync(queues[i % queues.Length], _payload).ConfigureAwait(false);
        }

        await done.ConfigureAwait(false);
    }

    /// <summary>Sends <see cref="Messages"/> messages while the pull consumer receives and acks as many (the oldest
    /// ready ones: with a backlog, messages sent before this call).</summary>
    private async Task SendAndReceive(Setup setup)
    {
        var consumer = setup.Consumer!;
        var reader = Task.Run(async () =>
        {
            for (var i = 0; i < Messages; i++)
            {
                var delivery = await consumer.ReceiveAsync().ConfigureAwait(false);
                await delivery.AckAsync().ConfigureAwait(false);
            }
        });
        for (var i = 0; i < Messages; i++)
        {
            await setup.Broker.SendAsync("q", _payload).ConfigureAwait(false);
        }

        await reader.ConfigureAwait(false);
    }

    private sealed record Setup(IMessageBroker Broker, string[] Queues, List<ISubscription> Subscriptions, IConsumer<Payload>? Consumer) : IAsyncDisposable
    {
        private TaskCompletionSource _done = new();
        private int _received;
        private int _target;

        internal Task Expect(int count)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _received, 0);
            Volatile.Write(ref _target, count);
            return _done.Task;
        }

        internal void Received()
        {
            if (Interlocked.Increment(ref _received) == Volatile.Read(ref _target))
            {
                _done.TrySetResult();
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var subscription in Subscriptions)
            {
                await subscription.DisposeAsync().ConfigureAwait(false);
            }

            if (Consumer is not null)
            {
                await Consumer.DisposeAsync().ConfigureAwait(false);
            }

            await Broker.DisposeAsync().ConfigureAwait(false);
        }
    }
}
