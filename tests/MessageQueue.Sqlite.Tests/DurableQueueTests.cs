using MessageQueue.Sqlite.Tests.Support;
using System.Collections.Concurrent;
using MessageQueue.Tests.Support;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

public sealed record Order(int Id);

[TestFixture]
[CancelAfter(30_000)]
public sealed class DurableQueueTests : TempDatabaseFixture
{
    private IMessageBroker Build(Action<MessageBrokerBuilder>? more = null, bool declareDurable = true)
    {
        var builder = new MessageBrokerBuilder().UseSqlite(Database);
        builder.AddQueue("dead", o => o.Durable = declareDurable);
        builder.AddQueue("q", o => { o.Durable = declareDurable; o.DeadLetterQueue = "dead"; });
        more?.Invoke(builder);
        return builder.Build();
    }

    private static async Task<List<int>> IdsAsync(IMessageBroker broker, string queue) =>
        [.. (await broker.Management.PeekAsync(queue)).Select(m => ((Order)m.Body).Id)];

    [Test]
    public void Canary_SqliteOpensAndRoundTrips()
    {
        using var store = new SqliteMessageStore(Database);
        Assert.That(store.Open().Queues, Is.Empty);
        var batch = new StoreBatch(
            inserts: [new StoredMessage(1, "q", 0, 0, new byte[] { 1, 2, 3 }), new StoredMessage(2, "q", 0, 0, new byte[] { 4 }) { Transient = true }],
            mustBeDurable: true);
        store.Write(batch);
        Assert.That(store.Read([2, 1, 3]).Select(r => r.Id), Is.EqualTo(new[] { 2L, 1L }));
        store.Dispose();

        using var again = new SqliteMessageStore(Database);
        var contents = again.Open();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(contents.Queues, Is.EqualTo(new Dictionary<string, int> { ["q"] = 1 }), "the transient row is gone");
            Assert.That(contents.MaxId, Is.EqualTo(1));
            Assert.That(again.ReadQueue("q", withEnvelopes: true).Select(r => (r.Id, r.Queue, r.Envelope.Length)), Is.EqualTo(new[] { (1L, "q", 3) }));
            Assert.That(again.ReadQueue("q", withEnvelopes: false).Select(r => (r.Id, r.Envelope.Length, r.Length)), Is.EqualTo(new[] { (1L, 0, 3) }));
        }
    }

    [Test]
    public void DurableQueueWithoutStore_IsATopologyProblem()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue("q", o => o.Durable = true).Build());
        Assert.That(ex!.Message, Does.Contain("Queue 'q' sets Durable = true, which the in-memory backend (no message store) cannot honour"));
    }

    [Test]
    public async Task Restart_RecoversReadyInOrder_UnackedAsRedelivered_AckedGone()
    {
        await using (var broker = Build())
        {
            for (var i = 1; i <= 5; i++)
            {
                await broker.SendAsync("q", new Order(i));
            }

            await broker.SendAsync("q", new Order(99), new PublishOptions { Persistent = false });
            var consumer = broker.Consume<Order>("q", o => o.Prefetch = 2);
            await (await consumer.ReceiveAsync()).AckAsync();
            _ = await consumer.ReceiveAsync(); // 2 stays unacked until the broker stops
        }

        await using var restarted = Build();
        await using var c = restarted.Consume<Order>("q", o => o.Prefetch = 1);
        var first = await c.ReceiveAsync().AsTask().WithSafety();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(restarted, "q"), Is.EqualTo(new[] { 3, 4, 5 }));
            Assert.That((first.Message.Id, first.Redelivered, first.DeliveryCount), Is.EqualTo((2, true, 2)));
        }
    }

    [Test]
    public async Task Delayed_KeepsItsDueTime_AcrossRestart()
    {
        var time = new ManualTimeProvider();
        await using (var broker = Build(b => b.UseTimeProvider(time)))
        {
            await broker.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromHours(1) });
        }

        time.Advance(TimeSpan.FromMinutes(30));
        await using var restarted = Build(b => b.UseTimeProvider(time));
        Assert.That(restarted.Management.GetQueueInfo("q").Delayed, Is.EqualTo(1));
        time.Advance(TimeSpan.FromMinutes(29));
        Assert.That(restarted.Management.GetQueueInfo("q").Ready, Is.Zero);
        time.Advance(TimeSpan.FromMinutes(1));
        await restarted.WaitForQueueAsync("q", i => i.Ready == 1); // ready once its row is renumbered to the tail
        Assert.That(await IdsAsync(restarted, "q"), Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public async Task DeadLetters_KeepContentAndHistory_AndHeadersKeepTheirTypes()
    {
        var headers = new Dictionary<string, object?>
        {
            ["s"] = "text", ["i"] = 5, ["l"] = 5L, ["b"] = (byte)7, ["g"] = Guid.Parse("0b7c2f5e-3f7d-4c55-9a59-0d7b6a0e1c11"),
            ["t"] = new DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.FromHours(2)), ["list"] = new List<object?> { 1, "two", null },
            ["bytes"] = new byte[] { 9, 8 }, ["d"] = 1.5, ["m"] = 2.25m, ["flag"] = true, ["none"] = null,
        };
        await using (var broker = Build())
        {
            await broker.SendAsync("q", new Order(1), new PublishOptions { Headers = headers, CorrelationId = "c-1", Priority = 3 });
            await using var consumer = broker.Consume<Order>("q");
            await (await consumer.ReceiveAsync()).RejectAsync("bad order");
            await broker.WaitForQueueAsync("dead", i => i.Ready == 1);
        }

        await using var restarted = Build();
        var dead = (await restarted.Management.PeekAsync("dead")).Single();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(((Order)dead.Body).Id, Is.EqualTo(1));
            Assert.That(restarted.Management.GetQueueInfo("q").Ready, Is.Zero);
            Assert.That(dead.Properties.Deaths.Select(d => (d.Queue, d.Reason, d.Count)), Is.EqualTo(new[] { ("q", "rejected", 1L) }));
            Assert.That(dead.Properties.Headers["x-rejection-reason"], Is.EqualTo("bad order"));
            Assert.That(dead.Properties.CorrelationId, Is.EqualTo("c-1"));
            Assert.That(dead.Properties.Priority, Is.EqualTo(3));
            foreach (var (key, value) in headers)
            {
                Assert.That(dead.Properties.Headers[key], Is.EqualTo(value), key);
                Assert.That(dead.Properties.Headers[key]?.GetType(), Is.EqualTo(value?.GetType()), key);
            }
        }
    }

    [Test]
    public async Task UndeclaredDurableQueue_IsKept_AndRecoveredWhenDeclaredAgain()
    {
        await using (var broker = Build(b => b.AddQueue("old", o => o.Durable = true)))
        {
            await broker.SendAsync("old", new Order(7));
        }

        await using (var without = Build())
        {
            Assert.That(without.Management.GetQueueNames(), Does.Not.Contain("old"));
        }

        await using var later = Build();
        await later.Management.DeclareQueueAsync("old", o => o.Durable = true);
        Assert.That(await IdsAsync(later, "old"), Is.EqualTo(new[] { 7 }));
    }

    [Test]
    public void NewerSchema_IsRefusedWithoutChangingTheDatabase()
    {
        using (var connection = new SqliteConnection($"Data Source={Database};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE mq_schema (version INTEGER NOT NULL); INSERT INTO mq_schema VALUES (99);";
            command.ExecuteNonQuery();
        }

        var ex = Assert.Throws<MessageStoreException>(() => Build());
        Assert.That(ex!.Message, Does.Contain("version 99, newer than this code understands (2)"));
    }

    [Test]
    public async Task ConcurrentPublishers_ShareCommits()
    {
        const int Publishers = 8, Each = 100;
        await using var broker = Build();
        var before = broker.Engine().Context.Durable!.Writes;
        await Task.WhenAll(Enumerable.Range(0, Publishers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < Each; i++)
            {
                await broker.SendAsync("q", new Order((p * Each) + i));
            }
        })));

        var writes = broker.Engine().Context.Durable!.Writes - before;
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(Publishers * Each));
        Assert.That(writes, Is.LessThan(Publishers * Each / 2), $"{writes} commits for {Publishers * Each} messages");
    }

    [Test]
    public async Task ALonePublishersMessage_JoinsItsQueueOnTheWriterThread_WithoutAHopToTheApplier()
    {
        // Issue 16: a lone publisher's confirm waited for two thread hops after the commit (writer to applier, applier
        // to the publisher). With nothing else to write and the applier idle, the writer applies the batch itself.
        await using var broker = Build();
        var queue = broker.Engine().Context.Topology.GetQueue("q");
        var threads = new System.Collections.Concurrent.ConcurrentQueue<string?>();
        queue.Changed += () => threads.Enqueue(Thread.CurrentThread.Name);
        for (var i = 0; i < 20; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        // Changed is raised by the publisher's admission too; the join is the change made on a store thread.
        Assert.That(threads, Does.Contain("MessageQueue store writer").And.No.Contains("MessageQueue store applier"), "the threads the queue changed on");
        Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(Enumerable.Range(0, 20)));
    }

    [Test]
    public async Task Acks_WaitForTheNextPublish_AndShareItsCommit_DisposeWritesTheRest()
    {
        var store = new FlakyStore(new SqliteMessageStore(Database));
        var batches = new ConcurrentQueue<(int Inserts, int Deletes, bool Durable)>();
        store.Written = b => batches.Enqueue((b.Inserts.Count, b.Deletes.Count, b.MustBeDurable));
        await using (var broker = new MessageBrokerBuilder().UseStore(() => store, new StorageOptions { AckDelay = TimeSpan.FromSeconds(10) })
            .AddQueue("q", o => o.Durable = true)
            .Build())
        {
            for (var i = 1; i <= 3; i++)
            {
                await broker.SendAsync("q", new Order(i));
            }

            await using var consumer = broker.Consume<Order>("q", o => o.Prefetch = 10);
            for (var i = 1; i <= 3; i++)
            {
                await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync();
            }

            batches.Clear();
            await broker.SendAsync("q", new Order(4));
            Assert.That(batches, Is.EqualTo(new[] { (1, 3, true) }), "the three acks ride along with the next publish: one commit");
            await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync(); // waits for no publish: written at dispose
        }

        using var reopened = new SqliteMessageStore(Database);
        Assert.That(reopened.Open().Queues, Is.Empty, "every ack was written");
    }

    [Test]
    public async Task AcksAlone_AreWrittenOnceAckDelayPasses_WithoutASync()
    {
        var store = new FlakyStore(new SqliteMessageStore(Database));
        var acksWritten = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Written = b =>
        {
            if (b.Deletes.Count > 0)
            {
                acksWritten.TrySetResult(b.MustBeDurable);
            }
        };
        await using var broker = new MessageBrokerBuilder().UseStore(() => store, new StorageOptions { AckDelay = TimeSpan.FromMilliseconds(20) })
            .AddQueue("q", o => o.Durable = true)
            .Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync();
        Assert.That(await acksWritten.Task.WithSafety(), Is.False, "nothing else happens, yet the ack is written (without a sync)");
    }

    [Test]
    public async Task AckDelay_IsCountedOnTheBrokersClock_NotOnTheMachinesClock()
    {
        // An hour of AckDelay is refused (at most 10 s), so a minute of manual time: nothing real waits that long.
        var time = new ManualTimeProvider();
        var store = new FlakyStore(new SqliteMessageStore(Database));
        var acksWritten = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Written = b =>
        {
            if (b.Deletes.Count > 0)
            {
                acksWritten.TrySetResult();
            }
        };
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .UseStore(() => store, new StorageOptions { AckDelay = TimeSpan.FromSeconds(10) })
            .AddQueue("q", o => o.Durable = true)
            .Build();
        await broker.SendAsync("q", new Order(1));
        await using var consumer = broker.Consume<Order>("q");
        await (await consumer.ReceiveAsync().AsTask().WithSafety()).AckAsync();

        await time.WaitForArmedTimersAsync(1); // the ack's AckDelay wait, on the broker's clock
        time.Advance(TimeSpan.FromSeconds(9.9)); // fires what is due, synchronously: not the AckDelay wait
        Assert.Multiple(() =>
        {
            Assert.That(time.ActiveTimers, Is.EqualTo(1), "the AckDelay wait is still armed after 9.9 s of the broker's clock");
            Assert.That(acksWritten.Task.IsCompleted, Is.False, "written before AckDelay passed on the broker's clock");
        });

        time.Advance(TimeSpan.FromSeconds(0.1));
        await acksWritten.Task.WaitAsync(TimeSpan.FromSeconds(5)); // well before 10 real seconds
    }

    [Test]
    public async Task StoreFailure_PublishThrows_NothingEnqueued_MemoryQueuesWork_ThenRecovers()
    {
        var store = new FlakyStore(new SqliteMessageStore(Database));
        await using var broker = new MessageBrokerBuilder().UseStore(() => store)
            .AddQueue("q", o => o.Durable = true)
            .AddQueue("mem")
            .Build();
        store.Failing = true;
        var ex = await Assert.ThrowsAsync<MessageStoreException>(async () => await broker.SendAsync("q", new Order(1)));
        await broker.SendAsync("mem", new Order(2));
        await using (var tx = broker.BeginTransaction())
        {
            await tx.SendAsync("q", new Order(3));
            await tx.SendAsync("mem", new Order(4));
            await Assert.ThrowsAsync<MessageStoreException>(async () => await tx.CommitAsync());
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Message, Does.Contain("disk full (simulated)"));
            Assert.That(broker.Management.GetQueueInfo("q").Published, Is.Zero);
            Assert.That(await IdsAsync(broker, "mem"), Is.EqualTo(new[] { 2 }));
        }

        store.Failing = false;
        await broker.SendAsync("q", new Order(5));
        Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 5 }));
    }

    [Test]
    public async Task BodyThatNoLongerDeserializes_IsDeadLetteredWithTheReason()
    {
        await using (var broker = Build())
        {
            await broker.SendAsync("q", new Order(1));
        }

        await using var restarted = Build(b => b.UseSerializer(new BrokenDeserializer()));
        var dead = (await restarted.Management.PeekAsync("dead")).Single();
        Assert.That(dead.Properties.Headers["x-rejection-reason"] as string, Does.Contain("no longer deserializes").And.Contain(typeof(Order).FullName!));
    }

    [Test]
    public async Task SerializationFailure_AtPublish_ThrowsAndEnqueuesNothing()
    {
        await using var broker = Build();
        var ex = await Assert.ThrowsAsync<MessageSerializationException>(async () => await broker.SendAsync("q", new SelfReferencing()));
        Assert.That(ex!.Message, Does.Contain(nameof(SelfReferencing)));
        Assert.That(broker.Management.GetQueueInfo("q").Published, Is.Zero);
    }

    public sealed class SelfReferencing
    {
        public SelfReferencing Self => this;
    }

    private sealed class BrokenDeserializer : IMessageSerializer
    {
        private readonly JsonMessageSerializer _json = new();

        public string ContentType => _json.ContentType;

        public byte[] Serialize(object body, Type type) => _json.Serialize(body, type);

        public object Deserialize(ReadOnlySpan<byte> data, Type type) => throw new FormatException("the contract changed");
    }

    private sealed class FlakyStore(IMessageStore inner) : IMessageStore
    {
        public volatile bool Failing;

        /// <summary>Called after each successful write, on the writer thread.</summary>
        public Action<StoreBatch>? Written;

        public StoreContents Open() => inner.Open();

        public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes) => inner.ReadQueue(queue, withEnvelopes);

        public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids) => inner.Read(ids);

        public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max) => inner.ReadReady(queue, afterId, upToId, max);

        public void Write(StoreBatch batch)
        {
            if (Failing)
            {
                throw new MessageStoreException("disk full (simulated)");
            }

            inner.Write(batch);
            Written?.Invoke(batch);
        }

        public void Dispose() => inner.Dispose();
    }
}
