using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// A lazy queue holding a backlog of <see cref="Messages"/> messages of 1 KB (SQLite or LiteDB, <c>Synchronous = Normal</c>):
/// published in batches of 1,000, then the managed heap measured with <c>GC.GetTotalMemory(true)</c>, then drained
/// by a pull consumer (prefetch 100, auto ack). One operation is the whole fill and drain, run once in every job
/// (a single iteration takes tens of seconds). Columns: Heap (MB) with everything queued, Fill and Drain (msg/s).
/// </summary>
[MemoryDiagnoser]
[WarmupCount(0)]
[IterationCount(1)]
[InvocationCount(1)]
public class LazyBenchmarks
{
    public const int Messages = 1_000_000;

    private const int Batch = 1_000;
    private readonly string _padding = new('x', 1_000);
    private string _path = "";

    [IterationSetup]
    public void NewDatabase() => _path = TempDatabase.NewPath();

    [IterationCleanup]
    public void DeleteDatabase() => TempDatabase.Delete(_path);

    [Benchmark(OperationsPerInvoke = Messages, Description = "lazy queue, fill and drain")]
    public Task FillAndDrain() =>
        Run(nameof(FillAndDrain), b => b.UseSqlite(_path, o => o.Synchronous = SqliteSynchronous.Normal));

    [Benchmark(OperationsPerInvoke = Messages, Description = "lazy queue on LiteDB, fill and drain")]
    public Task FillAndDrainLiteDb() =>
        Run(nameof(FillAndDrainLiteDb), b => b.UseLiteDb(_path, o => o.Synchronous = LiteDbSynchronous.Normal));

    private async Task Run(string name, Func<MessageBrokerBuilder, MessageBrokerBuilder> store)
    {
        await using var broker = store(new MessageBrokerBuilder())
            .AddQueue("big", o => o.Mode = QueueMode.Lazy)
            .Build();
        var messages = Smoke.Scale(Messages);
        var fill = Stopwatch.StartNew();
        for (var i = 0; i < messages; i += Batch)
        {
            await broker.PublishBatchAsync("", "big", Enumerable.Range(i, Math.Min(Batch, messages - i)).Select(n => new Blob(n, _padding))).ConfigureAwait(false);
        }

        fill.Stop();
        var heap = GC.GetTotalMemory(forceFullCollection: true);
        await using var consumer = broker.Consume<Blob>("big", o =>
        {
            o.Prefetch = 100;
            o.AckMode = AckMode.Auto;
        });
        var drain = Stopwatch.StartNew();
        for (var expected = 0; expected < messages; expected++)
        {
            Delivery<Blob> d;
            try
            {
                d = await consumer.ReceiveAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
            }
            catch (TimeoutException ex)
            {
                // A stuck drain fails the benchmark with what the queue holds, instead of hanging the run.
                throw new InvalidOperationException($"No message {expected} within 2 minutes: {broker.Management.GetQueueInfo("big")}", ex);
            }

            if (d.Message.N != expected)
            {
                throw new InvalidOperationException($"FIFO broken: expected {expected}, got {d.Message.N}");
            }
        }

        drain.Stop();
        ScenarioMetrics.Report(typeof(LazyBenchmarks), name, "heap-mb", heap / (1024.0 * 1024.0));
        ScenarioMetrics.Report(typeof(LazyBenchmarks), name, "fill-msg-s", messages / fill.Elapsed.TotalSeconds);
        ScenarioMetrics.Report(typeof(LazyBenchmarks), name, "drain-msg-s", messages / drain.Elapsed.TotalSeconds);
    }
}

/// <summary>A 1 KB message with its position, to check FIFO order.</summary>
public sealed record Blob(int N, string Padding);
