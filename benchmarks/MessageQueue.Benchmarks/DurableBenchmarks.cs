using BenchmarkDotNet.Attributes;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Durable publish-and-consume on SQLite (synchronous = FULL: every confirmed publish is synced), next to raw
/// Microsoft.Data.Sqlite doing the same work in the same run: each message inserted (one transaction per message,
/// or batches of 100), then read and deleted. One publisher is compared with one transaction per message; eight
/// concurrent publishers (group commit) with batches of 100. Each operation moves <see cref="Messages"/>
/// messages; the table reports per message.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class DurableBenchmarks
{
    public const int Messages = 2_000;

    private readonly byte[] _body = new byte[256];
    private string _path = "";

    [IterationSetup]
    public void NewDatabase() => _path = Path.Combine(Path.GetTempPath(), $"mq-bench-{Guid.NewGuid():N}.db");

    [IterationCleanup]
    public void DeleteDatabase()
    {
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw SQLite, 1 tx/message")]
    public void RawPerMessage() => Raw(batch: 1);

    [Benchmark(OperationsPerInvoke = Messages, Description = "durable queue, 1 publisher")]
    public Task DurableOnePublisher() => Durable(publishers: 1);

    [Benchmark(OperationsPerInvoke = Messages, Description = "raw SQLite, batches of 100")]
    public void RawBatched() => Raw(batch: 100);

    [Benchmark(OperationsPerInvoke = Messages, Description = "durable queue, 8 publishers")]
    public Task DurableEightPublishers() => Durable(publishers: 8);

    private async Task Durable(int publishers)
    {
        await using var broker = new MessageBrokerBuilder()
            .UseSqlite(_path)
            .AddQueue("q", o => o.Durable = true)
            .Build();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = 0;
        await using var subscription = broker.Subscribe<byte[]>("q", (_, _) =>
        {
            if (Interlocked.Increment(ref received) == Messages)
            {
                done.SetResult();
            }

            return ValueTask.CompletedTask;
        });
        var each = Messages / publishers;
        await Task.WhenAll(Enumerable.Range(0, publishers).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < each; i++)
            {
                await broker.SendAsync("q", _body).ConfigureAwait(false);
            }
        })));
        await done.Task;
    }

    private void Raw(int batch)
    {
        using var connection = new SqliteConnection($"Data Source={_path};Pooling=False");
        connection.Open();
        Execute(connection, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
        Execute(connection, "CREATE TABLE m (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL);");
        using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO m (queue, body) VALUES ('q', $body);";
        var body = insert.Parameters.Add("$body", SqliteType.Blob);
        for (var i = 0; i < Messages; i += batch)
        {
            using var tx = connection.BeginTransaction();
            insert.Transaction = tx;
            for (var j = 0; j < batch; j++)
            {
                body.Value = _body;
                insert.ExecuteNonQuery();
            }

            tx.Commit();
        }

        // Consume: read every message in order, then delete them (acks written in one batch).
        using var consume = connection.BeginTransaction();
        using var read = connection.CreateCommand();
        read.Transaction = consume;
        read.CommandText = "SELECT id, body FROM m ORDER BY id;";
        var ids = new List<long>(Messages);
        using (var rows = read.ExecuteReader())
        {
            while (rows.Read())
            {
                ids.Add(rows.GetInt64(0));
                _ = (byte[])rows.GetValue(1);
            }
        }

        using var delete = connection.CreateCommand();
        delete.Transaction = consume;
        delete.CommandText = "DELETE FROM m WHERE id = $id;";
        var id = delete.Parameters.Add("$id", SqliteType.Integer);
        foreach (var x in ids)
        {
            id.Value = x;
            delete.ExecuteNonQuery();
        }

        consume.Commit();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
