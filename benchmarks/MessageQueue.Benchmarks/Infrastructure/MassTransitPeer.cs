using MassTransit;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>A MassTransit 8 in-memory bus with receive endpoints whose handlers count messages, and a way to
/// wait for a number of them: the peer users would pick instead of MessageQueue in one process.</summary>
public sealed class MassTransitPeer : IAsyncDisposable
{
    private readonly IBusControl _bus;
    private TaskCompletionSource _done = new();
    private int _target;
    private int _received;

    /// <param name="endpoints">The receive endpoints (queues) to create, each consuming <see cref="Payload"/> and <see cref="Stamped"/>.</param>
    /// <param name="concurrency">Each endpoint's concurrent message limit.</param>
    /// <param name="onMessage">Called with each <see cref="Stamped"/> message handled.</param>
    private MassTransitPeer(IReadOnlyList<string> endpoints, int concurrency, Action<object>? onMessage)
    {
        _bus = MassTransit.Bus.Factory.CreateUsingInMemory(cfg =>
        {
            foreach (var name in endpoints)
            {
                cfg.ReceiveEndpoint(name, e =>
                {
                    e.ConcurrentMessageLimit = concurrency;
                    e.PrefetchCount = 32;
                    e.Handler<Payload>(_ => Received());
                    e.Handler<Stamped>(ctx =>
                    {
                        onMessage?.Invoke(ctx.Message);
                        return Received();
                    });
                });
            }
        });
    }

    public IBus Bus => _bus;

    public static async Task<MassTransitPeer> StartAsync(IReadOnlyList<string> endpoints, int concurrency, Action<object>? onMessage = null)
    {
        var peer = new MassTransitPeer(endpoints, concurrency, onMessage);
        await peer._bus.StartAsync().ConfigureAwait(false);
        return peer;
    }

    public Task<ISendEndpoint> EndpointAsync(string queue) => _bus.GetSendEndpoint(new Uri($"queue:{queue}"));

    /// <summary>Starts counting: the returned task completes when <paramref name="count"/> messages were handled.</summary>
    public Task Expect(int count)
    {
        _received = 0;
        _target = count;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _done.Task;
    }

    private Task Received()
    {
        if (Interlocked.Increment(ref _received) == _target)
        {
            _done.TrySetResult();
        }

        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync() => await _bus.StopAsync().ConfigureAwait(false);
}

/// <summary>A message that carries when it was sent (<see cref="System.Diagnostics.Stopwatch"/> ticks), for latency.</summary>
public sealed record Stamped(long Timestamp);
