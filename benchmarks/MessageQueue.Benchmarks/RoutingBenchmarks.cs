using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// What routing costs, in memory, per published message (each operation publishes <see cref="Messages"/>).
/// <list type="bullet">
/// <item>Fanout to 4 queues, each with one handler (4 deliveries per publish). Baseline: writing each message to 4
/// raw channels read by 4 tasks. Peer: MassTransit publishing to 4 receive endpoints that consume the type.</item>
/// <item>1,000 bindings on one exchange, each publish matching one of them (its key cycles through all 1,000).
/// Baseline: a raw channel behind a hand-written <c>Dictionary</c> lookup of the key, what an application would
/// write for direct routing. MessageQueue: a direct exchange and a topic exchange (patterns
/// <c>tenant.N.order.*</c>). MassTransit's in-memory transport routes by message type only, so it has no row here.</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class RoutingBenchmarks
{
    public const int Messages = 50_000;
    private const int Fanout = 4;
    private const int Bindings = 1_000;

    private readonly Payload _payload = new(42);
    private readonly string[] _directKeys = [.. Enumerable.Range(0, Bindings).Select(i => $"tenant.{i}")];
    private readonly string[] _topicKeys = [.. Enumerable.Range(0, Bindings).Select(i => $"tenant.{i}.order.created")];
    private IMessageBroker _broker = null!;
    private readonly List<ISubscription> _subscriptions = [];
    private TaskCompletionSource _done = new();
    private int _received;
    private int _target;
    private MassTransitPeer _massTransit = null!;

    [GlobalSetup]
    public void Setup()
    {
        var builder = new MessageBrokerBuilder()
            .AddExchange("fan", ExchangeType.Fanout)
            .AddExchange("direct", ExchangeType.Direct)
            .AddExchange("topic", ExchangeType.Topic)
            .AddQueue("routed");
        for (var i = 0; i < Fanout; i++)
        {
            builder.AddQueue($"fan-{i}").Bind("fan", $"fan-{i}");
        }

        for (var i = 0; i < Bindings; i++)
        {
            builder.Bind("direct", "routed", _directKeys[i]).Bind("topic", "routed", $"tenant.{i}.order.*");
        }

        _broker = builder.Build();
        foreach (var queue in Enumerable.Range(0, Fanout).Select(i => $"fan-{i}").Append("routed"))
        {
            _subscriptions.Add(_broker.Subscribe<Payload>(queue, (_, _) =>
            {
                if (Interlocked.Increment(ref _received) == _target)
                {
                    _done.SetResult();
                }

                return ValueTask.CompletedTask;
            }));
        }

        _massTransit = MassTransitPeer.StartAsync([.. Enumerable.Range(0, Fanout).Select(i => $"mt-fan-{i}")], concurrency: 1).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var s in _subscriptions)
        {
            s.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _massTransit.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [BenchmarkCategory("fanout to 4"), Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw: 4 Channel<T> writes")]
    public async Task RawFanout()
    {
        var channels = Enumerable.Range(0, Fanout).Select(_ => Channel.CreateUnbounded<Payload>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true })).ToArray();
        var readers = channels.Select(c => Task.Run(() => Drain(c.Reader, Messages))).ToArray();
        for (var i = 0; i < Messages; i++)
        {
            foreach (var c in channels)
            {
                c.Writer.TryWrite(_payload);
            }
        }

        await Task.WhenAll(readers).ConfigureAwait(false);
    }

    [BenchmarkCategory("fanout to 4"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue fanout exchange")]
    public Task MessageQueueFanout() => Publish("fan", _ => "", Messages * Fanout);

    [BenchmarkCategory("fanout to 4"), Benchmark(OperationsPerInvoke = Messages, Description = "MassTransit publish, 4 endpoints")]
    public async Task MassTransitFanout()
    {
        var done = _massTransit.Expect(Messages * Fanout);
        for (var i = 0; i < Messages; i++)
        {
            await _massTransit.Bus.Publish(_payload).ConfigureAwait(false);
        }

        await done.ConfigureAwait(false);
    }

    [BenchmarkCategory("1,000 bindings"), Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw: Dictionary lookup + Channel<T>")]
    public async Task RawLookup()
    {
        var channel = Channel.CreateUnbounded<Payload>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var routes = _directKeys.ToDictionary(k => k, _ => channel.Writer, StringComparer.Ordinal);
        var reader = Task.Run(() => Drain(channel.Reader, Messages));
        for (var i = 0; i < Messages; i++)
        {
            routes[_directKeys[i % Bindings]].TryWrite(_payload);
        }

        await reader.ConfigureAwait(false);
    }

    [BenchmarkCategory("1,000 bindings"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue direct exchange")]
    public Task MessageQueueDirect() => Publish("direct", i => _directKeys[i % Bindings], Messages);

    [BenchmarkCategory("1,000 bindings"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue topic exchange")]
    public Task MessageQueueTopic() => Publish("topic", i => _topicKeys[i % Bindings], Messages);

    private async Task Publish(string exchange, Func<int, string> key, int deliveries)
    {
        _received = 0;
        _target = deliveries;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        for (var i = 0; i < Messages; i++)
        {
            await _broker.PublishAsync(exchange, key(i), _payload).ConfigureAwait(false);
        }

        await _done.Task.ConfigureAwait(false);
    }

    private static async Task Drain(ChannelReader<Payload> reader, int count)
    {
        var n = 0;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out _))
            {
                if (++n == count)
                {
                    return;
                }
            }
        }
    }
}
