using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using LiteDB;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

/// <summary>
/// The LiteDB store next to raw LiteDB 5.0.21 doing the same work, and next to the SQLite store, in one run. The work:
/// each message inserted and, once consumed, deleted; raw LiteDB does it as the store does, one transaction per
/// message (or per 100) that inserts the new messages and deletes the ones consumed since the last (the store's
/// acks join the next publish's commit). Raw LiteDB a user would write runs on its two files opened unbuffered; "synced" rows
/// also sync the log file after each commit (what <see cref="LiteDbSynchronous.Full"/> does, and SQLite's
/// <c>synchronous = FULL</c>), the others leave it to the operating system (LiteDB's own behaviour,
/// <see cref="LiteDbSynchronous.Normal"/>). Two groups, each with its own baseline: one publisher waiting for each
/// confirm against raw LiteDB one synced transaction per message; eight publishers (1 or 100 outstanding) against
/// raw LiteDB synced batches of 100. The table reports per message.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class LiteDbBenchmarks
{
    public const int Few = 1_000;
    public const int Many = 10_000;

    private readonly byte[] _body = new byte[256];
    private string _path = "";

    [IterationSetup]
    public void NewDatabase() => _path = TempDatabase.NewPath();

    [IterationCleanup]
    public void DeleteDatabase() => TempDatabase.Delete(_path);

    [BenchmarkCategory("1 publisher"), Benchmark(Baseline = true, OperationsPerInvoke = Few, Description = "raw LiteDB, 1 tx/message, synced")]
    public void RawPerMessageSynced() => Raw(Smoke.Scale(Few), batch: 1, synced: true);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "raw LiteDB, 1 tx/message, not synced")]
    public void RawPerMessage() => Raw(Smoke.Scale(Few), batch: 1, synced: false);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "LiteDB store Full, 1 publisher")]
    public Task LiteDbOnePublisher() => DurableRun.Run(b => b.UseLiteDb(_path), _body, Smoke.Scale(Few), publishers: 1, outstanding: 1);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "LiteDB store Normal, 1 publisher")]
    public Task LiteDbNormalOnePublisher() => DurableRun.Run(b => b.UseLiteDb(_path, o => o.Synchronous = LiteDbSynchronous.Normal), _body, Smoke.Scale(Few), publishers: 1, outstanding: 1);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "SQLite store Full, 1 publisher")]
    public Task SqliteOnePublisher() => DurableRun.Run(b => b.UseSqlite(_path), _body, Smoke.Scale(Few), publishers: 1, outstanding: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(Baseline = true, OperationsPerInvoke = Many, Description = "raw LiteDB, batches of 100, synced")]
    public void RawBatchedSynced() => Raw(Smoke.Scale(Many), batch: 100, synced: true);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "LiteDB store Full, 8 publishers, 1 outstanding")]
    public Task LiteDbEightPublishers() => DurableRun.Run(b => b.UseLiteDb(_path), _body, Smoke.Scale(Many), publishers: 8, outstanding: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "LiteDB store Full, 8 publishers, 100 outstanding")]
    public Task LiteDbEightPublishersPipelined() => DurableRun.Run(b => b.UseLiteDb(_path), _body, Smoke.Scale(Many), publishers: 8, outstanding: 100);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "SQLite store Full, 8 publishers, 1 outstanding")]
    public Task SqliteEightPublishers() => DurableRun.Run(b => b.UseSqlite(_path), _body, Smoke.Scale(Many), publishers: 8, outstanding: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "SQLite store Full, 8 publishers, 100 outstanding")]
    public Task SqliteEightPublishersPipelined() => DurableRun.Run(b => b.UseSqlite(_path), _body, Smoke.Scale(Many), publishers: 8, outstanding: 100);

    /// <summary>What the store does, without the broker: each transaction inserts the next <paramref name="batch"/>
    /// messages and reads and deletes (consumes) the ones the previous transaction inserted, then the log is synced
    /// if <paramref name="synced"/> (the store syncs confirming commits; its acks join the next commit).</summary>
    private void Raw(int messages, int batch, bool synced)
    {
        var log = MessageQueue.LiteDb.LiteDbMessageStore.LogFileOf(_path);
        using var dataFile = new FileStream(_path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        using var logFile = new FileStream(log, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        using var db = new LiteDatabase(dataFile, logStream: logFile);
        var m = db.GetCollection("m", BsonAutoId.Int64);
        m.EnsureIndex("q");
        var previous = new List<BsonValue>();
        for (var i = 0; i <= messages; i += batch)
        {
            db.BeginTrans();
            foreach (var id in previous)
            {
                _ = m.FindById(id)["b"].AsBinary; // the consumer reads it, then acks it
                m.Delete(id);
            }

            previous.Clear();
            for (var j = 0; j < batch && i + j < messages; j++)
            {
                previous.Add(m.Insert(new BsonDocument { ["q"] = "q", ["b"] = _body }));
            }

            db.Commit();
            if (synced)
            {
                logFile.Flush(flushToDisk: true);
            }
        }
    }
}
