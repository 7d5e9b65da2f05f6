using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Sqlite;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// WolverineFx 6.62 local queues as a peer: one host with one local queue (<c>bench</c>) that a handler of
/// <see cref="WolverineMessage"/> reads, one message at a time. In memory, or durable: messages persisted with
/// Wolverine's SQLite message store (<c>PersistMessagesWithSqlite</c>) and the local queue durable
/// (<c>UseDurableLocalQueues</c>: each message is written to the store's inbox before it is handled, and deleted
/// after). Its handler code is generated at start (the default mode; <c>UseRuntimeCompilation</c>).
/// </summary>
public sealed class WolverinePeer : IAsyncDisposable
{
    private static WolverinePeer? _current;
    private readonly IHost _host;
    private TaskCompletionSource _done = new();
    private int _target;
    private int _received;

    private WolverinePeer(IHost host)
    {
        _host = host;
        Bus = host.Services.GetRequiredService<IMessageBus>();
    }

    public IMessageBus Bus { get; }

    /// <summary>Starts a host; with <paramref name="sqlitePath"/>, durable on a SQLite file there.</summary>
    public static async Task<WolverinePeer> StartAsync(string? sqlitePath = null)
    {
        var host = Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.ClearProviders().SetMinimumLevel(LogLevel.Warning))
            .UseWolverine(opts =>
            {
                opts.UseRuntimeCompilation();
                opts.Discovery.DisableConventionalDiscovery().IncludeType<WolverineMessageHandler>();
                opts.LocalQueue("bench").Sequential();
                opts.PublishMessage<WolverineMessage>().ToLocalQueue("bench");
                if (sqlitePath is not null)
                {
                    opts.PersistMessagesWithSqlite($"Data Source={sqlitePath}");
                    opts.Policies.UseDurableLocalQueues();
                }
            })
            .Build();
        var peer = new WolverinePeer(host);
        _current = peer;
        await host.StartAsync().ConfigureAwait(false);
        return peer;
    }

    /// <summary>Starts counting: the returned task completes when <paramref name="count"/> messages were handled.</summary>
    public Task Expect(int count)
    {
        _received = 0;
        _target = count;
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _done.Task;
    }

    internal static void Received()
    {
        var peer = _current!;
        if (Interlocked.Increment(ref peer._received) == peer._target)
        {
            peer._done.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync().ConfigureAwait(false);
        _host.Dispose();
    }
}

/// <summary>The message the Wolverine peer sends (Wolverine routes by type).</summary>
public sealed record WolverineMessage(int Value);

/// <summary>Wolverine's handler of <see cref="WolverineMessage"/> (the only type its discovery is given).</summary>
public sealed class WolverineMessageHandler
{
    public void Handle(WolverineMessage message) => WolverinePeer.Received();
}
