using MessageQueue.Testing;
using MessageQueue.Testing.Stores;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

/// <summary>The SQLite store against the store conformance suite every <see cref="IMessageStore"/> must pass, run as a
/// store author would run it from NUnit.</summary>
[TestFixture]
public sealed class SqliteStoreConformanceTests : SqliteConformance
{
    [TestCaseSource(typeof(MessageStoreConformance), nameof(Checks))]
    public Task Conforms(string check) => RunAsync(check);
}

/// <summary>How the suite creates SQLite stores and brings about each fault.</summary>
public class SqliteConformance : MessageStoreConformance
{
    private static readonly SqliteStoreOptions Options = new() { OwnerWaitTimeout = TimeSpan.FromMilliseconds(200) };

    protected override IMessageStore CreateStore(string location) => new SqliteMessageStore(location, Options);

    protected override IMessageStore CreateFullStore(string location) =>
        new SqliteMessageStore(location, Options) { FreePagesForTests = 8 };

    protected override IMessageStore CreateReadOnlyStore(string location) =>
        new SqliteMessageStore($"Data Source={location};Mode=ReadOnly", Options);

    protected override void MakeSchemaNewer(string location)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = location, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"INSERT INTO mq_schema (version) VALUES ({SqliteMessageStore.SchemaVersion + 1});";
        command.ExecuteNonQuery();
    }

    protected override void Corrupt(string location)
    {
        using var file = new FileStream(location, FileMode.Open, FileAccess.Write);
        file.Write(Enumerable.Repeat((byte)0x5A, 4096).ToArray());
    }
}

/// <summary>The suite can fail: stores that break one rule each fail the check of that rule, with a message that
/// says what the store did, and pass the checks of rules they keep.</summary>
[TestFixture]
public sealed class StoreConformanceSuiteTests
{
    [Test]
    public async Task AStoreThatReadsOutOfOrder_FailsTheOrderCheck_ShowingWhatItGave()
    {
        var suite = new Broken(store => new ReversingStore(store));
        var ex = await Assert.ThrowsAsync<MessageQueueAssertionException>(() => suite.RunAsync("Write_IsKept_AndReadBackInIdOrderPerQueue"));
        Assert.That(ex!.Message, Does.Contain("ids of queue a, in id order").And.Contain("expected [1, 3, 5]").And.Contain("the store gave [5, 3, 1]"));
        Assert.That(() => suite.RunAsync("Open_Empty_HoldsNothing"), Throws.Nothing, "a rule it keeps");
    }

    [Test]
    public async Task AStoreThatAppliesBatchesRowByRow_FailsTheAtomicityCheck()
    {
        var suite = new Broken(store => new RowByRowStore(store));
        var ex = await Assert.ThrowsAsync<MessageQueueAssertionException>(() => suite.RunAsync("Batch_ThatFails_WritesNothingOfIt_AndTheStoreGoesOn"));
        Assert.That(ex!.Message, Does.Contain("none of it applies").And.Contain("the store gave [1, 2]"));
    }

    [Test]
    public async Task AStoreThatForgetsOnReopen_FailsTheCrashRecoveryCheck()
    {
        var suite = new Broken(store => new ForgetfulStore(store));
        var ex = await Assert.ThrowsAsync<MessageQueueAssertionException>(() => suite.RunAsync("Broker_KilledAtSomePoint_RecoversWhatWasConfirmedAndNotAcked_InOrder_AndNothingElse"));
        Assert.That(ex!.Message, Does.Contain("messages recovered after the crash"));
    }

    [Test]
    public void UnknownChecks_AreRefused_NamingTheChecks()
    {
        var suite = new Broken(store => store);
        Assert.That(() => suite.RunAsync("NoSuchCheck"), Throws.ArgumentException.With.Message.Contains("NoSuchCheck").And.Message.Contains("Open_Empty_HoldsNothing"));
        Assert.That(MessageStoreConformance.Checks, Has.Count.EqualTo(17).And.Unique);
    }

    private sealed class Broken(Func<IMessageStore, IMessageStore> wrap) : SqliteConformance
    {
        protected override IMessageStore CreateStore(string location) => wrap(base.CreateStore(location));
    }

    private abstract class Wrapper(IMessageStore inner) : IMessageStore
    {
        protected IMessageStore Inner => inner;

        public virtual StoreContents Open() => inner.Open();

        public virtual IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

        public virtual void Write(StoreBatch batch) => inner.Write(batch);

        public void Dispose() => inner.Dispose();
    }

    private sealed class ReversingStore(IMessageStore inner) : Wrapper(inner)
    {
        public override IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => Inner.ReadQueue(queue, withEnvelopes).Reverse();
    }

    private sealed class RowByRowStore(IMessageStore inner) : Wrapper(inner)
    {
        public override void Write(StoreBatch batch)
        {
            foreach (var row in batch.Inserts)
            {
                Inner.Write(new StoreBatch(inserts: [row], mustBeDurable: batch.MustBeDurable));
            }

            Inner.Write(new StoreBatch(deletes: batch.Deletes, mustBeDurable: batch.MustBeDurable));
        }
    }

    private sealed class ForgetfulStore(IMessageStore inner) : Wrapper(inner)
    {
        public override StoreContents Open()
        {
            var contents = Inner.Open();
            foreach (var (queue, _) in contents.Queues)
            {
                Inner.Write(new StoreBatch(purges: [(queue, 0, long.MaxValue)]));
            }

            return contents with { Queues = new Dictionary<string, int>() };
        }
    }
}
