using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MessageQueue.Benchmarks.Infrastructure;
using Microsoft.Data.Sqlite;
using RabbitMQ.Client;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Durable publish-and-consume on SQLite (synchronous = FULL: every confirmed publish is synced), next to raw
/// Microsoft.Data.Sqlite doing the same work in the same run: each message inserted (one transaction per message,
/// or batches of 100), then read and deleted. Two groups, each with its own baseline: one publisher waiting for
/// each confirm against one transaction per message (<see cref="Few"/> messages per operation); eight concurrent
/// publishers (group commit), each waiting for every confirm or keeping up to 100 publishes outstanding (as
/// RabbitMQ publishers do with confirms), against batches of 100 (<see cref="Many"/> messages per operation).
/// The table reports per message. When a RabbitMQ server answers on localhost, each group also has RabbitMQ
/// (persistent messages to a durable queue, publisher confirms, manual acks) with the same publishers and
/// outstanding confirms; otherwise those rows are left out and the reason printed. WolverineFx 6.62 is the in-process
/// peer: a durable local queue with its SQLite message store (<see cref="WolverinePeer"/>), one host started once for
/// all its iterations (its handled messages are deleted from the store, so each iteration starts as empty).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class DurableBenchmarks
{
    public const int Few = 2_000;
    public const int Many = 10_000;

    private readonly byte[] _body = new byte[256];
    private string _path = "";
    private IConnection? _rabbit;
    private WolverinePeer? _wolverine;
    private string _wolverinePath = "";
    private readonly WolverineMessage _wolverineMessage = new(42);

    [GlobalSetup(Targets = [nameof(RabbitOnePublisher), nameof(RabbitEightPublishers), nameof(RabbitEightPublishersPipelined)])]
    public void ConnectRabbit() => _rabbit = RabbitMqPeer.ConnectAsync().GetAwaiter().GetResult();

    [GlobalCleanup(Targets = [nameof(RabbitOnePublisher), nameof(RabbitEightPublishers), nameof(RabbitEightPublishersPipelined)])]
    public void DisconnectRabbit() => _rabbit?.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [GlobalSetup(Targets = [nameof(WolverineOnePublisher), nameof(WolverineEightPublishers)])]
    public void StartWolverine()
    {
        _wolverinePath = TempDatabase.NewPath();
        _wolverine = WolverinePeer.StartAsync(_wolverinePath).GetAwaiter().GetResult();
    }

    [GlobalCleanup(Targets = [nameof(WolverineOnePublisher), nameof(WolverineEightPublishers)])]
    public void StopWolverine()
    {
        _wolverine?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        TempDatabase.Delete(_wolverinePath);
    }

    [IterationSetup]
    public void NewDatabase() => _path = TempDatabase.NewPath();

    [IterationCleanup]
    public void DeleteDatabase() => TempDatabase.Delete(_path);

    [BenchmarkCategory("1 publisher"), Benchmark(Baseline = true, OperationsPerInvoke = Few, Description = "raw SQLite, 1 tx/message")]
    public void RawPerMessage() => Raw(Few, batch: 1);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "durable queue, 1 publisher")]
    public Task DurableOnePublisher() => Durable(Few, publishers: 1, outstanding: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(Baseline = true, OperationsPerInvoke = Many, Description = "raw SQLite, batches of 100")]
    public void RawBatched() => Raw(Many, batch: 100);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "durable queue, 8 publishers, 1 outstanding")]
    public Task DurableEightPublishers() => Durable(Many, publishers: 8, outstanding: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "durable queue, 8 publishers, 100 outstanding")]
    public Task DurableEightPublishersPipelined() => Durable(Many, publishers: 8, outstanding: 100);

    [RequiresRabbitMq, BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "RabbitMQ, 1 publisher, 1 outstanding")]
    public Task RabbitOnePublisher() => RabbitMqPeer.PublishAndConsumeAsync(_rabbit!, _body, Few, publishers: 1, outstanding: 1);

    [RequiresRabbitMq, BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "RabbitMQ, 8 publishers, 1 outstanding")]
    public Task RabbitEightPublishers() => RabbitMqPeer.PublishAndConsumeAsync(_rabbit!, _body, Many, publishers: 8, outstanding: 1);

    [RequiresRabbitMq, BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "RabbitMQ, 8 publishers, 100 outstanding")]
    public Task RabbitEightPublishersPipelined() => RabbitMqPeer.PublishAndConsumeAsync(_rabbit!, _body, Many, publishers: 8, outstanding: 100);

    [BenchmarkCategory("1 publisher"), Benchmark(OperationsPerInvoke = Few, Description = "Wolverine durable local queue, SQLite, 1 publisher")]
    public Task WolverineOnePublisher() => Wolverine(Few, publishers: 1);

    [BenchmarkCategory("8 publishers"), Benchmark(OperationsPerInvoke = Many, Description = "Wolverine durable local queue, SQLite, 8 publishers, 1 outstanding")]
    public Task WolverineEightPublishers() => Wolverine(Many, publishers: 8);

    private async Task Wolverine(int messages, int publishers)
    {
        var each = Smoke.Scale(messages) / publishers;
        var done = _wolverine!.Expect(each * publishers);
        await Task.WhenAll(Enumerable.Range(0, publishers).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < each; i++)
            {
                await _wolverine.Bus.SendAsync(_wolverineMessage).ConfigureAwait(false);
            }
        }))).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    private Task Durable(int messages, int publishers, int outstanding) =>
        DurableRun.Run(b => b.UseSqlite(_path), _body, messages, publishers, outstanding);

    private void Raw(int messages, int batch)
    {
        using var connection = new SqliteConnection($"Data Source={_path};Pooling=False");
        connection.Open();
        Execute(connection, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
        Execute(connection, "CREATE TABLE m (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL);");
        using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO m (queue, body) VALUES ('q', $body);";
        var body = insert.Parameters.Add("$body", SqliteType.Blob);
        for (var i = 0; i < messages; i += batch)
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
        var ids = new List<long>(messages);
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

/// <summary>The durable scenario both stores run: a broker with one durable queue and a handler, publishers that each
/// keep at most a number of publishes waiting for their confirm, until the handler has seen every message.</summary>
public static class DurableRun
{
    public static async Task Run(Func<MessageBrokerBuilder, MessageBrokerBuilder> store, byte[] body, int messages, int publishers, int outstanding)
    {
        await using var broker = store(new MessageBrokerBuilder())
            .AddQueue("q", o => o.Durable = true)
            .Build();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = 0;
        var each = messages / publishers;
        var total = each * publishers; // what the publishers send (a smoke run's scaled count need not divide)
        await using var subscription = broker.Subscribe<byte[]>("q", (_, _) =>
        {
            if (Interlocked.Increment(ref received) == total)
            {
                done.SetResult();
            }

            return ValueTask.CompletedTask;
        });
        await Task.WhenAll(Enumerable.Range(0, publishers).Select(_ => Task.Run(async () =>
        {
            var pending = new Queue<Task>(outstanding);
            for (var i = 0; i < each; i++)
            {
                if (pending.Count == outstanding)
                {
                    await pending.Dequeue().ConfigureAwait(false);
                }

                pending.Enqueue(broker.SendAsync("q", body).AsTask());
            }

            await Task.WhenAll(pending).ConfigureAwait(false);
        })));
        await done.Task;
    }
}
