using System.Text;
using MessageQueue.Tests.Support;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

/// <summary>A store that holds what cannot be read (a row cut short, a wrong version, an unknown header tag, a value
/// of the wrong SQLite type, a store that fails while reading): <see cref="MessageBrokerBuilder.Build"/> throws
/// <see cref="MessageStoreException"/> naming the store and the message, and releases everything it had opened.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class DamagedStoreTests : TempDatabaseFixture
{
    private const string MarkedHeader = "tagme";

    private MessageBrokerBuilder Builder(TimeProvider? time = null)
    {
        var builder = new MessageBrokerBuilder().UseSqlite(Database).AddQueue("q", o => o.Durable = true);
        return time is null ? builder : builder.UseTimeProvider(time);
    }

    /// <summary>Stores three durable messages, each with an int header named <see cref="MarkedHeader"/>, and returns
    /// the id of the first row.</summary>
    private async Task<long> StoreThreeAsync()
    {
        await using (var broker = Builder().Build())
        {
            for (var i = 0; i < 3; i++)
            {
                await broker.SendAsync("q", new Order(i), new PublishOptions { Headers = new Dictionary<string, object?> { [MarkedHeader] = 42 } });
            }
        }

        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT MIN(id) FROM mq_messages;";
        return (long)command.ExecuteScalar()!;
    }

    private SqliteConnection Connect()
    {
        var connection = new SqliteConnection($"Data Source={Database};Pooling=False");
        connection.Open();
        return connection;
    }

    private void Execute(string sql, long id)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", id);
        Assert.That(command.ExecuteNonQuery(), Is.EqualTo(1), sql);
    }

    private byte[] ReadEnvelope(long id)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT envelope FROM mq_messages WHERE id = $id;";
        command.Parameters.AddWithValue("$id", id);
        return (byte[])command.ExecuteScalar()!;
    }

    private void WriteEnvelope(long id, byte[] envelope)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE mq_messages SET envelope = $envelope WHERE id = $id;";
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$envelope", envelope);
        Assert.That(command.ExecuteNonQuery(), Is.EqualTo(1));
    }

    /// <summary>Where the marked header's key is in an envelope: its length byte, then its UTF-8 bytes; the value's
    /// tag follows, and the header count (an int) precedes it (it is the first header).</summary>
    private static int MarkedHeaderAt(byte[] envelope)
    {
        byte[] key = [(byte)MarkedHeader.Length, .. Encoding.UTF8.GetBytes(MarkedHeader)];
        var at = envelope.AsSpan().IndexOf(key);
        Assert.That(at, Is.GreaterThan(4), "the marked header is in the envelope");
        return at;
    }

    private static void AssertNamesStoreAndMessage(MessageStoreException ex, string database, long id)
    {
        Assert.That(ex.Message, Does.Contain(database), "names the store (the database file)");
        Assert.That(ex.Message, Does.Contain($"store id {id}").And.Contain("'q'"), "names the row and its queue");
    }

    [Test]
    public async Task Build_EnvelopeCutShort_ThrowsMessageStoreExceptionNamingTheDatabase()
    {
        var id = await StoreThreeAsync();
        Execute("UPDATE mq_messages SET envelope = substr(envelope, 1, 20) WHERE id = $id;", id);

        var ex = Assert.Throws<MessageStoreException>(() => Builder().Build());

        Assert.Multiple(() =>
        {
            AssertNamesStoreAndMessage(ex!, Database, id);
            Assert.That(ex!.InnerException, Is.InstanceOf<EndOfStreamException>(), "the cause is kept");
        });
    }

    [Test]
    public async Task Build_FailingOnADamagedRow_ReleasesTheDatabaseTheWriterThreadAndTheTimer()
    {
        var id = await StoreThreeAsync();
        Execute("UPDATE mq_messages SET envelope = substr(envelope, 1, 20) WHERE id = $id;", id);
        var time = new ManualTimeProvider();
        var builder = Builder(time);

        Assert.Throws<MessageStoreException>(() => builder.Build());

        Assert.Multiple(() =>
        {
            Assert.That(builder.LastDurableLog, Is.Not.Null, "the build got as far as starting the store writer");
            Assert.That(builder.LastDurableLog!.IsClosed, Is.True, "the store writer thread was stopped");
            Assert.That(time.Timers, Is.Zero, "the scheduler's timer was disposed");
            Assert.That(FilesHeldOpen(), Is.Empty, "no connection of the failed build holds the database");
        });

        foreach (var file in new[] { Database, Database + "-wal", Database + "-shm" })
        {
            Assert.That(() => File.Delete(file), Throws.Nothing, file);
        }
    }

    [Test]
    public async Task FilesHeldOpenCheck_WhileABrokerHasTheDatabase_SeesIt()
    {
        // The check the test above relies on does see a store that is still open.
        await StoreThreeAsync();
        await using var broker = Builder().Build();
        Assert.That(FilesHeldOpen(), Is.Not.Empty);
    }

    [Test]
    public async Task Build_AfterTheDamagedRowIsRepaired_SucceedsAndRecoversEverything()
    {
        var id = await StoreThreeAsync();
        var original = ReadEnvelope(id);
        Execute("UPDATE mq_messages SET envelope = substr(envelope, 1, 20) WHERE id = $id;", id);
        var builder = Builder();
        Assert.Throws<MessageStoreException>(() => builder.Build());

        WriteEnvelope(id, original);
        await using var broker = builder.Build();

        var ids = (await broker.Management.PeekAsync("q")).Select(m => ((Order)m.Body).Id);
        Assert.That(ids, Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That((await broker.SendAsync("q", new Order(3))).RoutedQueues, Is.EqualTo(1), "the rebuilt broker writes to the store");
    }

    [Test]
    public async Task Build_EnvelopeWithWrongVersion_ThrowsMessageStoreExceptionNamingTheDatabase()
    {
        var id = await StoreThreeAsync();
        var envelope = ReadEnvelope(id);
        envelope[0] = 7;
        WriteEnvelope(id, envelope);

        var ex = Assert.Throws<MessageStoreException>(() => Builder().Build());

        Assert.Multiple(() =>
        {
            AssertNamesStoreAndMessage(ex!, Database, id);
            Assert.That(ex!.Message, Does.Contain("envelope version 7"));
        });
    }

    [Test]
    public async Task Build_HeaderWithUnknownValueTag_ThrowsMessageStoreExceptionNamingTheDatabase()
    {
        var id = await StoreThreeAsync();
        var envelope = ReadEnvelope(id);
        envelope[MarkedHeaderAt(envelope) + 1 + MarkedHeader.Length] = 200;
        WriteEnvelope(id, envelope);

        var ex = Assert.Throws<MessageStoreException>(() => Builder().Build());

        Assert.Multiple(() =>
        {
            AssertNamesStoreAndMessage(ex!, Database, id);
            Assert.That(ex!.Message, Does.Contain("unknown value tag 200"));
        });
    }

    [Test]
    public async Task Build_HeaderCountBeyondTheEnvelope_ThrowsMessageStoreExceptionNamingTheDatabase()
    {
        var id = await StoreThreeAsync();
        var envelope = ReadEnvelope(id);
        BitConverter.TryWriteBytes(envelope.AsSpan(MarkedHeaderAt(envelope) - 4), int.MaxValue);
        WriteEnvelope(id, envelope);

        var ex = Assert.Throws<MessageStoreException>(() => Builder().Build());

        AssertNamesStoreAndMessage(ex!, Database, id);
    }

    [Test]
    public async Task Build_EnvelopeThatIsNotABlob_ThrowsMessageStoreExceptionNamingTheDatabase()
    {
        var id = await StoreThreeAsync();
        Execute("UPDATE mq_messages SET envelope = 'not an envelope' WHERE id = $id;", id);

        var ex = Assert.Throws<MessageStoreException>(() => Builder().Build());

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Message, Does.Contain(Database));
            Assert.That(ex.Message, Does.Contain("'q'"));
        });
    }

    [Test]
    public void Build_StoreThatFailsWhileReading_ThrowsMessageStoreExceptionNamingTheStore_AndDisposesIt()
    {
        var store = new FailingReadStore();
        var builder = new MessageBrokerBuilder().UseStore(() => store).AddQueue("q", o => o.Durable = true);

        var ex = Assert.Throws<MessageStoreException>(() => builder.Build());

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Message, Does.Contain("test store 'failing'").And.Contain("'q'"));
            Assert.That(ex.InnerException, Is.InstanceOf<IOException>());
            Assert.That(store.Disposed, Is.True);
            Assert.That(builder.LastDurableLog!.IsClosed, Is.True);
        });
    }

    [Test]
    public void SqliteMessageStore_ToString_NamesTheDatabaseFile()
    {
        using var store = new SqliteMessageStore(Database);
        using var withConnectionString = new SqliteMessageStore($"Data Source={Database};Password=secret");
        Assert.Multiple(() =>
        {
            Assert.That(store.ToString(), Does.Contain(Database));
            Assert.That(withConnectionString.ToString(), Does.Contain(Database).And.Not.Contain("secret"));
        });
    }

    /// <summary>The database's files (the database, its WAL and shared memory) this process has open. On Linux the
    /// open descriptors say so (SQLite in WAL mode lets another connection lock the database next to an idle one, and
    /// an open file can be deleted there); elsewhere a file that cannot be opened unshared is held.</summary>
    private List<string> FilesHeldOpen()
    {
        string[] files = [Database, Database + "-wal", Database + "-shm"];
        if (Directory.Exists("/proc/self/fd"))
        {
            return [.. Directory.EnumerateFileSystemEntries("/proc/self/fd")
                .Select(fd => new FileInfo(fd).LinkTarget)
                .Where(target => target is not null && files.Contains(target))
                .Select(target => target!)];
        }

        var held = new List<string>();
        foreach (var file in files.Where(File.Exists))
        {
            try
            {
                using var unshared = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                held.Add(file);
            }
        }

        return held;
    }

    /// <summary>A store that holds one message of queue 'q' and fails with an I/O error when it is read.</summary>
    private sealed class FailingReadStore : IMessageStore
    {
        public bool Disposed { get; private set; }

        public StoreContents Open() => new(new Dictionary<string, int> { ["q"] = 1 }, 1, []);

        public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes)
        {
            yield return Fail();
        }

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => [Fail()];

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => [Fail()];

        public void Write(StoreBatch batch)
        {
        }

        public void Dispose() => Disposed = true;

        public override string ToString() => "test store 'failing'";

        private static StoredMessage Fail() => throw new IOException("the disk went away (simulated)");
    }
}
