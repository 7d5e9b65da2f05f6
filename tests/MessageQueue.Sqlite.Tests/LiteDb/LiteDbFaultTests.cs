using LiteDB;
using MessageQueue.LiteDb;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>Faults of the LiteDB store as a broker meets them: each a <see cref="MessageStoreException"/> with the
/// cause, nothing of a failed publish enqueued, in-memory queues working on; one owner per file.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class LiteDbFaultTests : TempDatabaseFixture
{
    [Test]
    public async Task FullDisk_PublishFailsWithTheCause_NothingEnqueued_OthersWork_ThenSmallerPublishesWork()
    {
        var options = new LiteDbStoreOptions();
        await using var broker = new MessageBrokerBuilder()
            .UseStore(() => new LiteDbMessageStore(Database, options) { FreeBytesForTests = 256 * 1024 }, options)
            .AddQueue("q", o => o.Durable = true)
            .AddQueue("mem")
            .Build();
        await broker.SendAsync("q", new Order(1));

        var big = new Blob(new string('x', 2 * 1024 * 1024));
        var ex = await Assert.ThrowsAsync<MessageStoreException>(async () => await broker.SendAsync("q", big));
        await broker.SendAsync("mem", new Order(3));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain(Database).And.Contain("Maximum data file size"));
            Assert.That(ex.InnerException, Is.InstanceOf<LiteException>());
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "nothing of the failed publish was enqueued");
            Assert.That(broker.Management.GetQueueInfo("mem").Ready, Is.EqualTo(1));
        }

        await broker.SendAsync("q", new Order(4));
        var ids = (await broker.Management.PeekAsync("q", 10)).Select(m => ((Order)m.Body).Id);
        Assert.That(ids, Is.EqualTo(new[] { 1, 4 }));
    }

    [Test]
    public async Task FileHeldByAnotherLiteDb_IsAClearErrorAtBuild_NamingTheFile()
    {
        using (var create = new LiteDbMessageStore(Database))
        {
            create.Open();
        }

        using var other = new LiteDatabase($"Filename={Database};Connection=direct");
        _ = other.GetCollectionNames().ToList(); // another application has the file open
        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder().UseLiteDb(Database).AddQueue("q", o => o.Durable = true).Build());
        Assert.That(ex!.Message, Does.Contain("could not be opened").And.Contain(Database));
    }

    [Test]
    public async Task WhileABrokerHasTheFile_AnotherLiteDbCannotOpenIt()
    {
        await using var broker = new MessageBrokerBuilder().UseLiteDb(Database).AddQueue("q", o => o.Durable = true).Build();
        await broker.SendAsync("q", new Order(1));
        Assert.That(() => new LiteDatabase($"Filename={Database};Connection=direct").GetCollectionNames().ToList(), Throws.InstanceOf<IOException>());
        await broker.SendAsync("q", new Order(2));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(2));
    }

    [Test]
    public async Task SecondBroker_OnTheSameFile_FailsBuild_NamingTheOwner_AndTheFirstKeepsWorking()
    {
        await using var first = new MessageBrokerBuilder().UseLiteDb(Database).AddQueue("q", o => o.Durable = true).Build();
        await first.SendAsync("q", new Order(1));
        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder()
            .UseLiteDb(Database, o => o.OwnerWaitTimeout = TimeSpan.Zero).AddQueue("q", o => o.Durable = true).Build());
        await first.SendAsync("q", new Order(2));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain("in use by another broker").And.Contain($"process {Environment.ProcessId}").And.Contain("LiteDbStoreOptions.OwnerWaitTimeout"));
            Assert.That(first.Management.GetQueueInfo("q").Ready, Is.EqualTo(2));
        }
    }

    [Test]
    public void ReadOnly_IsAClearErrorAtBuild()
    {
        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder().UseLiteDb($"Filename={Database};ReadOnly=true")
            .AddQueue("q", o => o.Durable = true).Build());
        Assert.That(ex!.Message, Does.Contain("ReadOnly=true").And.Contain(Database));
    }

    [Test]
    public void CorruptFile_IsAClearErrorAtBuild_AndTheFileIsLeftAlone()
    {
        var garbage = Enumerable.Range(0, 16384).Select(i => (byte)(i * 7)).ToArray();
        File.WriteAllBytes(Database, garbage);
        var ex = Assert.Throws<MessageStoreException>(() => new MessageBrokerBuilder().UseLiteDb(Database).AddQueue("q", o => o.Durable = true).Build());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain("could not be opened").And.Contain(Database));
            Assert.That(File.ReadAllBytes(Database), Is.EqualTo(garbage));
        }
    }

    [Test]
    public void BadOptions_AreRefusedAtUseLiteDb_NamingTheProblem()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new MessageBrokerBuilder().UseLiteDb($"Filename={Database};Connection=shared"), Throws.ArgumentException.With.Message.Contains("Connection=shared"));
            Assert.That(() => new MessageBrokerBuilder().UseLiteDb("Filename=:memory:"), Throws.ArgumentException.With.Message.Contains("needs a file"));
            Assert.That(() => new MessageBrokerBuilder().UseLiteDb(Database, o => o.OwnerWaitTimeout = TimeSpan.FromSeconds(-2)), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("OwnerWaitTimeout"));
            Assert.That(() => new MessageBrokerBuilder().UseLiteDb(Database, o => o.CheckpointPages = 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("CheckpointPages"));
            Assert.That(() => new MessageBrokerBuilder().UseLiteDb(" "), Throws.ArgumentException);
        }
    }

    [Test]
    public void ToString_NamesTheFile_NeverThePassword()
    {
        var store = new LiteDbMessageStore($"Filename={Database};Password=hunter2");
        Assert.That(store.ToString(), Does.Contain(Database).And.Not.Contain("hunter2"));
    }

    [Test]
    public async Task APasswordProtectedFile_KeepsItsMessages_AndIsNotReadableWithoutThePassword()
    {
        await using (var broker = new MessageBrokerBuilder().UseLiteDb($"Filename={Database};Password=s3cret").AddQueue("q", o => o.Durable = true).Build())
        {
            await broker.SendAsync("q", new Order(7));
        }

        Assert.That(File.ReadAllBytes(Database).AsSpan().IndexOf("mq_messages"u8), Is.EqualTo(-1), "the file is encrypted");
        await using var again = new MessageBrokerBuilder().UseLiteDb($"Filename={Database};Password=s3cret").AddQueue("q", o => o.Durable = true).Build();
        Assert.That((await again.Management.PeekAsync("q", 10)).Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 7 }));
    }

    [TestCase(LiteDbSynchronous.Full)]
    [TestCase(LiteDbSynchronous.Normal)]
    public async Task Synchronous_Full_SyncsTheLogForEveryConfirmingCommit_AndNormalNever_NorForAcks(LiteDbSynchronous synchronous)
    {
        var options = new LiteDbStoreOptions { Synchronous = synchronous };
        LiteDbMessageStore? store = null;
        await using var broker = new MessageBrokerBuilder()
            .UseStore(() => store = new LiteDbMessageStore(Database, options), options)
            .AddQueue("q", o => o.Durable = true)
            .Build();
        for (var i = 0; i < 5; i++)
        {
            await broker.SendAsync("q", new Order(i)); // one at a time: each is its own confirming commit
        }

        var afterPublishes = store!.LogSyncsForTests;
        await using (var consumer = broker.Consume<Order>("q"))
        {
            for (var i = 0; i < 5; i++)
            {
                await (await consumer.ReceiveAsync()).AckAsync();
            }
        }

        await broker.WaitForQueueAsync("q", info => info.Acked == 5);
        await ((MessageBroker)broker).WhenIdleAsync(); // the acks' commits are written
        using (Assert.EnterMultipleScope())
        {
            Assert.That(afterPublishes, Is.EqualTo(synchronous == LiteDbSynchronous.Full ? 5 : 0), "syncs after 5 confirmed publishes");
            Assert.That(store.LogSyncsForTests, Is.EqualTo(afterPublishes), "acks are not synced");
        }
    }

    /// <summary>A message too big for the space left.</summary>
    public sealed record Blob(string Text);
}
