using MessageQueue.Sqlite.Tests.Support;
using System.Collections.Concurrent;
using MessageQueue.Tests.Support;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

/// <summary>The store itself: deduplication across restarts, batch limits, schema upgrades, and real SQLite faults
/// (a locked, read-only or corrupt database).</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class StoreTests : TempDatabaseFixture
{
    private SqliteConnection Connect()
    {
        var connection = new SqliteConnection($"Data Source={Database};Pooling=False");
        connection.Open();
        return connection;
    }

    private long Scalar(string sql)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }

    [Test]
    public async Task DeduplicationWindow_OfADurableQueue_SurvivesARestart()
    {
        var time = new ManualTimeProvider();
        IMessageBroker Build() => new MessageBrokerBuilder().UseSqlite(Database).UseTimeProvider(time)
            .AddQueue("q", o =>
            {
                o.Durable = true;
                o.DeduplicationWindow = TimeSpan.FromMinutes(5);
            })
            .Build();
        var a = new PublishOptions { MessageId = "a" };

        await using (var broker = Build())
        {
            await broker.SendAsync("q", new Order(1), a);
            await broker.Management.PurgeAsync("q"); // the message is gone; its id is still remembered
        }

        time.Advance(TimeSpan.FromMinutes(4));
        await using (var restarted = Build())
        {
            var again = await restarted.SendAsync("q", new Order(2), a);
            Assert.That(again.IsDuplicate, Is.True, "remembered across the restart");
        }

        time.Advance(TimeSpan.FromMinutes(1));
        await using (var later = Build())
        {
            var fresh = await later.SendAsync("q", new Order(3), a);
            Assert.That(fresh.IsDuplicate, Is.False, "the window counts from the first publish, before the restart");
        }

        Assert.That(Scalar("SELECT COUNT(*) FROM mq_dedup;"), Is.EqualTo(1), "the id of the first publish was forgotten in the store; the third one's is remembered");
    }

    [Test]
    public async Task BatchLimit_SplitsConcurrentPublishes_NeverOnePublish()
    {
        var store = new RecordingStore(new SqliteMessageStore(Database));
        await using var broker = new MessageBrokerBuilder().UseStore(() => store, new StorageOptions { MaxBatchSize = 10 })
            .AddQueue("q", o => o.Durable = true)
            .Build();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                await broker.SendAsync("q", new Order((p * 100) + i));
            }
        })));
        var beforeBatch = store.Sizes.Count;
        await broker.PublishBatchAsync("", "q", Enumerable.Range(1000, 25).Select(i => new Order(i)));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(425));
            Assert.That(store.Sizes.Take(beforeBatch).Max(), Is.LessThanOrEqualTo(10));
            Assert.That(store.Sizes.Skip(beforeBatch), Does.Contain(25), "one publish of 25 is one transaction");
        }
    }

    [Test]
    public void SchemaVersion1_IsUpgradedInPlace_KeepingMessages()
    {
        using (var connection = Connect())
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE mq_schema (version INTEGER NOT NULL); INSERT INTO mq_schema VALUES (1);
                CREATE TABLE mq_messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, delivery_count INTEGER NOT NULL, due INTEGER NOT NULL, envelope BLOB NOT NULL);
                INSERT INTO mq_messages VALUES (7, 'q', 2, 0, x'010203');
                """;
            command.ExecuteNonQuery();
        }

        using (var store = new SqliteMessageStore(Database))
        {
            var contents = store.Open();
            var row = store.ReadQueue("q", withEnvelopes: true).Single();
            using (Assert.EnterMultipleScope())
            {
                Assert.That(contents.Queues["q"], Is.EqualTo(1));
                Assert.That((row.Id, row.DeliveryCount, row.Transient, row.Envelope.ToArray()), Is.EqualTo((7L, 2, false, new byte[] { 1, 2, 3 })));
            }
        }

        Assert.That(Scalar("SELECT MAX(version) FROM mq_schema;"), Is.EqualTo(SqliteMessageStore.SchemaVersion));
    }

    [Test]
    public async Task LockedDatabase_PublishFailsWithTheCause_OthersWork_ThenRecovers()
    {
        await using var broker = new MessageBrokerBuilder().UseSqlite(Database, o => o.BusyTimeout = TimeSpan.FromMilliseconds(100))
            .AddQueue("q", o => o.Durable = true)
            .AddQueue("mem")
            .Build();
        await broker.SendAsync("q", new Order(1));
        using (var other = Connect())
        {
            using var locking = other.CreateCommand();
            locking.CommandText = "BEGIN EXCLUSIVE;";
            locking.ExecuteNonQuery(); // another process holds the write lock

            var ex = await Assert.ThrowsAsync<MessageStoreException>(async () => await broker.SendAsync("q", new Order(2)));
            await broker.SendAsync("mem", new Order(3));
            using (Assert.EnterMultipleScope())
            {
                Assert.That(ex!.Message, Does.Contain("locked"));
                Assert.That(ex.InnerException, Is.InstanceOf<SqliteException>());
                Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "nothing of the failed publish was enqueued");
                Assert.That(broker.Management.GetQueueInfo("mem").Ready, Is.EqualTo(1));
            }

            locking.CommandText = "ROLLBACK;";
            locking.ExecuteNonQuery();
        }

        await broker.SendAsync("q", new Order(4));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(2));
    }

    [Test]
    public void ReadOnlyDatabase_IsAClearErrorAtBuild()
    {
        using (var create = new SqliteMessageStore(Database))
        {
            create.Open();
        }

        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder().UseSqlite($"Data Source={Database};Mode=ReadOnly")
            .AddQueue("q", o => o.Durable = true)
            .Build());
        Assert.That(ex!.Message, Does.Contain("could not be opened").And.Contain("readonly"));
    }

    [Test]
    public void CorruptDatabase_IsAClearErrorAtBuild_AndTheFileIsLeftAlone()
    {
        var garbage = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        File.WriteAllBytes(Database, garbage);
        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder().UseSqlite(Database)
            .AddQueue("q", o => o.Durable = true)
            .Build());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain("could not be opened").And.Contain("not a database"));
            Assert.That(File.ReadAllBytes(Database), Is.EqualTo(garbage));
        }
    }

    /// <summary>Records the size of every batch written.</summary>
    private sealed class RecordingStore(IMessageStore inner) : IMessageStore
    {
        public ConcurrentQueue<int> SizesQueue { get; } = new();

        public List<int> Sizes => [.. SizesQueue];

        public StoreContents Open() => inner.Open();

        public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

        public void Write(StoreBatch batch)
        {
            SizesQueue.Enqueue(batch.Count);
            inner.Write(batch);
        }

        public void Dispose() => inner.Dispose();
    }

    [TestCase(-1)]
    [TestCase(30 * 24 * 3600)]
    public void BusyTimeout_OutOfRange_IsRefusedAtUseSqlite_NamingTheOption(int seconds)
    {
        var timeout = seconds < 0 ? TimeSpan.FromSeconds(-1) : TimeSpan.FromSeconds(seconds);
        Assert.That(() => new MessageBrokerBuilder().UseSqlite(Database, o => o.BusyTimeout = timeout),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("BusyTimeout"));
    }
}
