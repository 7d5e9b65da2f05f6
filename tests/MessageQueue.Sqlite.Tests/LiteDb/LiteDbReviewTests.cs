using System.Runtime.InteropServices;
using MessageQueue.LiteDb;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>Review of the LiteDB store against the <see cref="IMessageStore"/> contract: each test fails because of a
/// fault in the store, unless marked "guard, passes".</summary>
[TestFixture]
[NonParallelizable] // two tests lower this process's file size limit for a moment
[CancelAfter(120_000)]
public sealed class LiteDbReviewTests : TempDatabaseFixture
{
    // ---- Queue keys: the index on "k" compares with the file's collation, LiteDB's default (the current culture,
    // IgnoreCase, set when the file is created; the store passes no Collation). Key() assumes ordinal order: with it
    // 'orders' ranges over 'Orders' too, and, U+0001 being ignorable in a culture comparison, over 'orders2' and
    // 'orders10' ("orders" + "2000...2" sorts between "orders" + "000...1" and "orders" + "9223..."). These five
    // failed at 3694ea2; they pass with the ordinal collation (EngineSettings.Collation) in the working tree. ----

    [Test]
    public void ReadQueue_GivesOnlyItsOwnQueue_NotOneWhoseNameDiffersInCase()
    {
        using var store = Open();
        store.Write(new StoreBatch(inserts: [Row(1, "orders"), Row(2, "Orders"), Row(3, "ORDERS")], mustBeDurable: true));
        var rows = store.ReadQueue("orders", withEnvelopes: true).ToList();
        Assert.That(rows.Select(r => $"{r.Id}:{r.Queue}"), Is.EqualTo(new[] { "1:orders" }), "queue names are case-sensitive (the broker keeps 'orders' and 'Orders' apart)");
    }

    [Test]
    public void ReadQueue_GivesOnlyItsOwnQueue_NotOneWhoseNameExtendsItWithADigit()
    {
        using var store = Open();
        store.Write(new StoreBatch(inserts: [Row(1, "orders"), Row(2, "orders2"), Row(3, "orders10")], mustBeDurable: true));
        var rows = store.ReadQueue("orders", withEnvelopes: true).ToList();
        Assert.That(rows.Select(r => $"{r.Id}:{r.Queue}"), Is.EqualTo(new[] { "1:orders" }), string.Join(", ", rows.Select(r => $"{r.Id}:{r.Queue}")));
    }

    [Test]
    public void ReadReady_GivesOnlyItsOwnQueue()
    {
        using var store = Open();
        store.Write(new StoreBatch(inserts: [Row(1, "jobs"), Row(2, "Jobs"), Row(3, "jobs1")], mustBeDurable: true));
        var rows = store.ReadReady("jobs", 0, 10, 10);
        Assert.That(rows.Select(r => $"{r.Id}:{r.Queue}"), Is.EqualTo(new[] { "1:jobs" }));
    }

    [Test]
    public void Purge_DeletesOnlyItsOwnQueuesRows()
    {
        using var store = Open();
        store.Write(new StoreBatch(inserts: [Row(1, "lazy"), Row(2, "Lazy"), Row(3, "lazy7"), Row(4, "lazy")], mustBeDurable: true));
        store.Write(new StoreBatch(purges: [("lazy", 0, 4)]));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(store.ReadQueue("Lazy", withEnvelopes: false).Where(r => r.Queue == "Lazy").Select(r => r.Id), Is.EqualTo(new[] { 2L }), "a purge of 'lazy' keeps the rows of 'Lazy'");
            Assert.That(store.ReadQueue("lazy7", withEnvelopes: false).Where(r => r.Queue == "lazy7").Select(r => r.Id), Is.EqualTo(new[] { 3L }), "a purge of 'lazy' keeps the rows of 'lazy7'");
        }
    }

    [Test]
    public async Task Broker_Restarted_RecoversEachDurableQueueOwnMessagesOnly()
    {
        await using (var broker = Broker())
        {
            await broker.SendAsync("orders", new Order(1));
            await broker.SendAsync("orders2", new Order(2));
            await broker.SendAsync("Orders", new Order(3));
        }

        await using var again = Broker();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await Bodies("orders"), Is.EqualTo("1"));
            Assert.That(await Bodies("orders2"), Is.EqualTo("2"));
            Assert.That(await Bodies("Orders"), Is.EqualTo("3"));
        }

        async Task<string> Bodies(string queue) => string.Join(",", (await again.Management.PeekAsync(queue, 10)).Select(m => ((Order)m.Body).Id));

        IMessageBroker Broker() => new MessageBrokerBuilder().UseLiteDb(Database)
            .AddQueue("orders", o => o.Durable = true)
            .AddQueue("orders2", o => o.Durable = true)
            .AddQueue("Orders", o => o.Durable = true)
            .Build();
    }

    // ---- Ids near long.MaxValue ----

    [Test]
    public void ReadQueue_AFullLastPageEndingAtLongMaxValue_EndsInsteadOfStartingOver()
    {
        // guard, passes since a5e5ddc (before it, the next page started over at Key(q, long.MaxValue + 1 -> 0) forever).
        using var store = Open();
        store.Write(new StoreBatch(inserts: [.. Enumerable.Range(0, 1000).Select(i => Row(long.MaxValue - 999 + i, "q", size: 8))]));
        var count = store.ReadQueue("q", withEnvelopes: false).Take(3000).Count(); // bounded: the reader may loop
        Assert.That(count, Is.EqualTo(1000));
    }

    // ---- I/O errors (a full disk is ENOSPC; here EFBIG, from this process's file size limit: the same IOException).
    // A commit whose log write fails leaves LiteDB's transaction active on the writer's thread, its written pages
    // already released; the store's Rollback (now and before each later batch) fails on LiteDB's check "discarded page
    // must be writable", so every later Write fails, and the transaction is left to a finalizer that throws. ----

    [Test]
    public void Write_ThatFailsWithAnIOError_WritesNothing_AndTheStoreTakesTheNextWrite()
    {
        Assume.That(OperatingSystem.IsLinux(), "the file size limit is set with setrlimit");
        var store = Open();
        var engine = Defuse(store);
        store.Write(new StoreBatch(inserts: [Row(1, "q")], mustBeDurable: true));
        var before = Math.Max(new FileInfo(Database).Length, new FileInfo(LiteDbLog).Length);
        Exception? failure;
        using (FileSizeLimit.Set(before + 64 * 1024))
        {
            failure = Assert.Catch(() => store.Write(new StoreBatch(inserts: [Row(2, "q", size: 1024 * 1024)], mustBeDurable: true)));
        }

        Assert.That(failure, Is.InstanceOf<MessageStoreException>(), "the failed write");

        // With room on the disk again, the next writes succeed (the broker retries what nobody waits on).
        var errors = new List<string>();
        for (var id = 3; id < 8; id++)
        {
            try
            {
                store.Write(new StoreBatch(inserts: [Row(id, "q")], mustBeDurable: true));
            }
            catch (MessageStoreException ex)
            {
                errors.Add($"write of row {id}: {ex.Message}");
            }
        }

        store.Dispose();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(errors, Is.Empty, "writes after the disk has room again");
            Assert.That(LeftTransactions(engine), Is.Empty,
                "LiteDB transactions left active after Dispose: the finalizer of each throws on the finalizer thread, which ends the process (this test keeps them alive so that it does not)");
        }
    }

    [Test]
    public void Write_WhoseCheckpointFailsAfterItsCommit_DoesNotSayNothingWasWritten()
    {
        Assume.That(OperatingSystem.IsLinux(), "the file size limit is set with setrlimit");
        using var store = Open(new LiteDbStoreOptions { CheckpointPages = 1 }); // every commit checkpoints
        store.Write(new StoreBatch(inserts: [.. Enumerable.Range(1, 64).Select(i => Row(i, "q", size: 16 * 1024))], mustBeDurable: true));
        var dataLength = new FileInfo(Database).Length;
        Assert.That(new FileInfo(LiteDbLog).Length, Is.Zero, "the checkpoint emptied the log");

        // The new batch's pages fit in the (empty) log, below the limit; its checkpoint appends them to the data file,
        // above it.
        Exception? failure = null;
        using (FileSizeLimit.Set(dataLength + 8192))
        {
            try
            {
                store.Write(new StoreBatch(inserts: [.. Enumerable.Range(100, 8).Select(i => Row(i, "q", size: 16 * 1024))], mustBeDurable: true));
            }
            catch (MessageStoreException ex)
            {
                failure = ex;
            }
        }

        var stored = store.ReadQueue("q", withEnvelopes: false).Count(r => r.Id >= 100);
        Assert.That(failure is null || stored == 0, Is.True,
            $"Write threw ({failure?.GetType().Name}: {failure?.Message}, from {string.Join(" <- ", failure?.InnerException?.StackTrace?.Split('\n').Select(l => l.Trim()).Where(l => l.Contains("LiteDB", StringComparison.Ordinal)).Take(4) ?? [])}) yet {stored} of the batch's 8 rows are stored and read back");

        // The store checkpoints after the commit: the batch is written and reported so, and the store goes on.
        store.Write(new StoreBatch(inserts: [Row(200, "q")], mustBeDurable: true));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(failure, Is.Null, "a checkpoint that failed after the commit does not fail the write");
            Assert.That(stored, Is.EqualTo(8));
            Assert.That(store.ReadQueue("q", withEnvelopes: false).Count(r => r.Id >= 100), Is.EqualTo(9), "the next write, once there is room");
        }
    }

    [Test]
    public async Task Broker_AfterAPublishFailedForAFullDisk_PublishesAgainWhenThereIsRoom()
    {
        Assume.That(OperatingSystem.IsLinux(), "the file size limit is set with setrlimit");
        var options = new LiteDbStoreOptions();
        LiteDbMessageStore? store = null;
        await using var broker = new MessageBrokerBuilder()
            .UseStore(() => store = new LiteDbMessageStore(Database, options), options)
            .AddQueue("q", o => o.Durable = true)
            .Build();
        var engine = Defuse(store!);
        await broker.SendAsync("q", new Order(1));
        var before = Math.Max(new FileInfo(Database).Length, new FileInfo(LiteDbLog).Length);
        using (FileSizeLimit.Set(before + 64 * 1024))
        {
            await Assert.ThrowsAsync<MessageStoreException>(async () => await broker.SendAsync("q", new Text(new string('x', 1024 * 1024))));
        }

        // README: "When the store fails (a full disk, ...) PublishAsync throws MessageStoreException ... and the broker
        // recovers when the store does."
        Exception? after = null;
        try
        {
            await broker.SendAsync("q", new Order(2));
        }
        catch (MessageStoreException ex)
        {
            after = ex;
        }

        await broker.DisposeAsync();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(after, Is.Null, "a small publish once the disk has room again");
            Assert.That(LeftTransactions(engine), Is.Empty,
                "LiteDB transactions left active after the broker closed its store: once the writer thread has ended, a GC finalizes one, whose Dispose(false) throws 'discarded page must be writable' on the finalizer thread and ends the process (seen without this test's keeping them alive)");
        }
    }

    // ---- Large envelopes and long names (guards unless marked) ----

    [Test]
    [Ignore("Known limit of the LiteDB store, documented in README (Persistence): LiteDB refuses a document over 16,683,050 bytes, so a message over about 16 MB fails its publish with a MessageStoreException")]
    public void Write_OfA20MBEnvelope_IsStored_AsOnTheSqliteStore()
    {
        // Fails: LiteDB 5 refuses documents over 16,683,050 bytes (Constants.MAX_DOCUMENT_SIZE); the store keeps the
        // envelope in the document, and nothing documents a size limit (the SQLite store takes up to 1 GB).
        using var store = Open();
        var big = Row(1, "q", size: 20 * 1024 * 1024);
        Exception? failure = null;
        try
        {
            store.Write(new StoreBatch(inserts: [big], mustBeDurable: true));
        }
        catch (MessageStoreException ex)
        {
            failure = ex;
        }

        Assert.That(failure, Is.Null, "writing one message of 20 MB");
        Assert.That(store.Read([1]).Single().Envelope.ToArray(), Is.EqualTo(big.Envelope.ToArray()));
    }

    [Test]
    public void Write_ThatFailsForAnEnvelopeTooLargeForLiteDb_LeavesNothing_AndTheStoreGoesOn()
    {
        // guard, passes: LiteDB's document size limit fails the batch whole, as a MessageStoreException.
        using var store = Open();
        Assert.Throws<MessageStoreException>(() => store.Write(new StoreBatch(inserts: [Row(1, "q"), Row(2, "q", size: 17 * 1024 * 1024)], mustBeDurable: true)));
        store.Write(new StoreBatch(inserts: [Row(3, "q")], mustBeDurable: true));
        Assert.That(store.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new[] { 3L }));
    }

    [Test]
    public void QueueNamesOf255Characters_AnyScript_AndLongMessageIds_AreKept()
    {
        // guard, passes: 255 three-byte characters make a 785-byte key, under LiteDB's 1023-byte index key limit; message
        // ids are hashed for the document id.
        var euros = new string('\u20AC', 255);
        var emoji = string.Concat(Enumerable.Repeat("\U0001F600", 127)) + "x";
        var longId = new string('m', 100_000);
        using (var store = Open())
        {
            store.Write(new StoreBatch(
                inserts: [Row(1, euros), Row(2, emoji), Row(3, euros, due: 5)],
                remember: [new RememberedId(euros, longId, 10), new RememberedId(euros, longId + "2", 11)],
                mustBeDurable: true));
            store.Write(new StoreBatch(remember: [new RememberedId(euros, longId, 12)], forget: [new RememberedId(euros, longId + "2", 99)], renumbered: [(3, 4)]));
        }

        using var again = new LiteDbMessageStore(Database);
        var contents = again.Open();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(contents.Queues, Is.EqualTo(new Dictionary<string, int> { [euros] = 2, [emoji] = 1 }));
            Assert.That(again.ReadQueue(euros, withEnvelopes: false).Select(r => (r.Id, r.DueTicks)), Is.EqualTo(new[] { (1L, 0L), (4L, 0L) }));
            Assert.That(again.ReadReady(emoji, 0, 10, 10).Select(r => r.Id), Is.EqualTo(new[] { 2L }));
            Assert.That(contents.Remembered.Select(r => (r.MessageId.Length, r.SeenTicks)), Is.EqualTo(new[] { (100_001, 11L), (100_000, 12L) }));
        }
    }

    [Test]
    public void EmptyBatches_AndIdsNearLongMaxValue_Work()
    {
        // guard, passes
        using var store = Open();
        store.Write(new StoreBatch(mustBeDurable: true));
        store.Write(new StoreBatch(inserts: [Row(long.MaxValue - 1, "q"), Row(long.MaxValue, "q")], mustBeDurable: true));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(store.ReadReady("q", long.MaxValue - 1, long.MaxValue, 10).Select(r => r.Id), Is.EqualTo(new[] { long.MaxValue }));
            Assert.That(store.ReadQueue("q", withEnvelopes: false).Select(r => r.Id), Is.EqualTo(new[] { long.MaxValue - 1, long.MaxValue }));
        }
    }

    [Test]
    public void Open_ThatFailed_ReleasesTheOwnerAndTheFiles_SoAnOpenAfterTheCauseIsFixedSucceeds()
    {
        // guard, passes: a wrong password, then the right one; a file another LiteDB holds, then released.
        using (var create = new LiteDbMessageStore($"Filename={Database};Password=right"))
        {
            create.Open();
            create.Write(new StoreBatch(inserts: [Row(1, "q")], mustBeDurable: true));
        }

        using (var wrong = new LiteDbMessageStore($"Filename={Database};Password=wrong", new LiteDbStoreOptions { OwnerWaitTimeout = TimeSpan.Zero }))
        {
            Assert.Throws<MessageStoreException>(() => wrong.Open());
        }

        using (var other = new FileStream(LiteDbLog, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            using var blocked = new LiteDbMessageStore($"Filename={Database};Password=right", new LiteDbStoreOptions { OwnerWaitTimeout = TimeSpan.Zero });
            Assert.Throws<MessageStoreException>(() => blocked.Open());
        }

        using var right = new LiteDbMessageStore($"Filename={Database};Password=right", new LiteDbStoreOptions { OwnerWaitTimeout = TimeSpan.Zero });
        Assert.That(right.Open().Queues, Is.EqualTo(new Dictionary<string, int> { ["q"] = 1 }));
    }

    // ---- Open on a damaged file ----

    [Test]
    [Ignore("Known limit of the LiteDB store, documented in README (Persistence): LiteDB marks a file it finds damaged as invalid (one header byte) while the open fails")]
    public void Open_OfAFileDamagedInAnIndexPage_FailsWithAMessageStoreException_AndChangesNothing()
    {
        // Page 2 holds index nodes: LiteDB's check fails (ENSURE, "get only index below highest index"), and LiteDB's
        // Close(ex) for that error code marks the data file invalid (header byte 191), a write to a file the contract
        // says is left unchanged (damaging other pages, with the same options, changes nothing).
        const int page = 2;
        using (var store = Open(new LiteDbStoreOptions { CheckpointPages = 1 }))
        {
            store.Write(new StoreBatch(inserts: [.. Enumerable.Range(1, 40).Select(i => Row(i, i % 2 == 0 ? "a" : "b", size: 2000))], remember: [new RememberedId("a", "m1", 5)]));
        }

        var bytes = File.ReadAllBytes(Database);
        Assume.That(bytes.Length, Is.GreaterThan((page + 1) * 8192), "the file has that page");
        for (var i = page * 8192 + 32; i < (page + 1) * 8192; i += 7)
        {
            bytes[i] ^= 0x5A;
        }

        File.WriteAllBytes(Database, bytes);
        Exception? failure = null;
        try
        {
            using var store = Open(new LiteDbStoreOptions { CheckpointPages = 1 });
            _ = store.ReadQueue("a", withEnvelopes: true).ToList();
            _ = store.ReadQueue("b", withEnvelopes: true).ToList();
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(failure, Is.Null.Or.InstanceOf<MessageStoreException>(), $"what a damaged page {page} gives: {failure}");
            if (failure is MessageStoreException { Message: var m } && m.Contains("could not be opened", StringComparison.Ordinal))
            {
                Assert.That(File.ReadAllBytes(Database), Is.EqualTo(bytes), "a store that could not be opened is left as it was");
            }
        }
    }

    // ---- Reads on other threads ----

    [Test]
    public void Reads_OnOtherThreads_WhileWritesRenumberDeleteAndPurge_AreConsistent_AndNeverFail()
    {
        // guard, passes: LiteDB's explicit transaction lives in the writer thread's slot; reads on other threads run
        // query-only transactions on committed pages, also across checkpoints.
        using var store = Open(new LiteDbStoreOptions { CheckpointPages = 8 }); // checkpoints while reads run
        long next = 0;
        store.Write(new StoreBatch(inserts: [.. Enumerable.Range(0, 2500).Select(_ => Row(++next, "lazy", size: 64))]));
        var problems = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var reads = 0;
        using var stop = new CancellationTokenSource();
        void Check(IEnumerable<StoredMessage> rows, string what)
        {
            long last = 0;
            foreach (var r in rows)
            {
                if (r.Id <= last || r.Queue != "lazy")
                {
                    problems.Enqueue($"{what}: row {r.Id} of '{r.Queue}' after {last}");
                }

                last = r.Id;
            }

            Interlocked.Increment(ref reads);
        }

        var readers = Enumerable.Range(0, 2).Select(n => Task.Run(() =>
        {
            var random = new Random(n);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    Check(store.ReadQueue("lazy", withEnvelopes: n == 0), "ReadQueue");
                    var from = random.NextInt64(0, Interlocked.Read(ref next));
                    Check(store.ReadReady("lazy", from, from + 500, 200), "ReadReady");
                    var ids = Enumerable.Range(0, 50).Select(_ => random.NextInt64(1, Interlocked.Read(ref next) + 1)).ToList();
                    var found = store.Read(ids);
                    if (found.Any(r => r.Envelope.Length != 64))
                    {
                        problems.Enqueue("Read: an envelope of the wrong length");
                    }
                }
                catch (Exception ex)
                {
                    problems.Enqueue($"{ex.GetType().Name}: {ex.Message}");
                }
            }
        })).ToList();

        var random = new Random(42);
        for (var b = 0; b < 150 && problems.IsEmpty; b++)
        {
            var start = next;
            var inserts = Enumerable.Range(0, 30).Select(i => Row(start + 1 + i, "lazy", size: 64, due: i % 10 == 0 ? 99 : 0)).ToList();
            var renumbered = new List<(long, long)> { (start + 1, start + 31) }; // the delayed row of this batch becomes due
            var deletes = Enumerable.Range(0, 10).Select(_ => random.NextInt64(1, start + 1)).Distinct().ToList();
            var purges = b % 25 == 0 ? new[] { ("lazy", random.NextInt64(0, start), random.NextInt64(0, start)) } : [];
            store.Write(new StoreBatch(inserts: inserts, renumbered: renumbered, deletes: deletes, deliveries: [(start - 1, b)], purges: purges,
                remember: [new RememberedId("lazy", $"m{b}", b)], forget: [new RememberedId("lazy", $"m{b - 1}", b - 1)], mustBeDurable: b % 2 == 0));
            Interlocked.Exchange(ref next, start + 31);
        }

        stop.Cancel();
        Task.WaitAll(readers);
        Assert.That(problems.Take(10), Is.Empty, $"problems in {reads} reads");
    }

    [Test]
    public void Dispose_WhileReadsRun_LeavesNoLiteDbTransactionToTheFinalizer_AndReleasesTheFile()
    {
        // A race, shown within 60 rounds in every run here (first at rounds 5 to 38). The SQLite store closes its
        // reader under a lock its reads take; this store closes the LiteDB engine under running reads, and a read
        // transaction is left registered and not disposed. Without this test keeping the engine alive, a GC later
        // finalized one and its Dispose(false) threw "share counter must be > 0 in Release()" on the finalizer thread:
        // "Test host process crashed" (1 of 2 runs of 25 rounds).
        var problems = new List<string>();
        for (var round = 0; round < 60 && problems.Count == 0; round++)
        {
            var store = Open();
            var engine = Defuse(store);
            store.Write(new StoreBatch(inserts: [.. Enumerable.Range(1, 1500).Select(i => Row(i, "q", size: 64))], mustBeDurable: true));
            var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var started = new CountdownEvent(3);
            var readers = Enumerable.Range(0, 3).Select(n => Task.Run(() =>
            {
                started.Signal();
                var failed = false;
                for (var i = 0; i < 10_000 && !failed; i++)
                {
                    try
                    {
                        _ = n switch
                        {
                            0 => store.ReadQueue("q", withEnvelopes: true).Count(),
                            1 => store.ReadReady("q", 0, 1500, 1000).Count,
                            _ => store.Read([.. Enumerable.Range(1, 300).Select(x => (long)x)]).Count,
                        };
                    }
                    catch (Exception ex) when (ex is MessageStoreException or ObjectDisposedException)
                    {
                        failed = true;
                    }
                    catch (Exception ex)
                    {
                        errors.Enqueue($"{ex.GetType().Name}: {ex.Message}");
                        failed = true;
                    }
                }
            })).ToArray();
            started.Wait();
            try
            {
                store.Dispose();
            }
            catch (Exception ex)
            {
                problems.Add($"round {round}: Dispose threw {ex.GetType().Name}: {ex.Message}");
            }

            Task.WaitAll(readers);
            problems.AddRange(errors.Select(e => $"round {round}: a read threw {e}"));
            problems.AddRange(LeftTransactions(engine).Select(t => $"round {round}: after Dispose, LiteDB holds {t}"));

            using var again = new LiteDbMessageStore(Database, new LiteDbStoreOptions { OwnerWaitTimeout = TimeSpan.Zero });
            if (!again.Open().Queues.TryGetValue("q", out var count) || count != 1500)
            {
                problems.Add($"round {round}: the file opened again holds {count} rows");
            }

            again.Dispose();
            DeleteDatabase();
        }

        Assert.That(problems, Is.Empty);
    }

    // ---- A lazy queue's backlog on disk: read without envelopes ----

    [Test]
    [Ignore("Known limit of the LiteDB store, documented in README (Persistence): LiteDB reads whole documents, so counting a lazy backlog reads its envelopes once (time and short-lived allocation, not retained memory)")]
    public void ReadQueue_WithoutEnvelopes_DoesNotReadTheEnvelopes()
    {
        using var store = Open();
        WriteBacklog(store);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var rows = store.ReadQueue("lazy", withEnvelopes: false).Count();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(rows, Is.EqualTo(Backlog));
        Assert.That(allocated, Is.LessThan(8 * 1024 * 1024), $"bytes allocated to read the ids and lengths of {Backlog} rows of 128 KB (the SQLite store reads length(envelope))");
    }

    [Test]
    [Ignore("Known limit of the LiteDB store, documented in README (Persistence): LiteDB reads whole documents, so Open reads every envelope once")]
    public void Open_OfALargeLazyBacklog_DoesNotReadTheEnvelopes()
    {
        using (var store = Open())
        {
            WriteBacklog(store);
        }

        using var again = new LiteDbMessageStore(Database);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var contents = again.Open();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(contents.Queues["lazy"], Is.EqualTo(Backlog));
        Assert.That(allocated, Is.LessThan(8 * 1024 * 1024), $"bytes allocated by Open to count {Backlog} rows of 128 KB");
    }

    // ---- Helpers ----

    private const int Backlog = 300;

    /// <summary>A message body.</summary>
    public sealed record Text(string Value);

    private static void WriteBacklog(LiteDbMessageStore store)
    {
        for (var b = 0; b < Backlog / 30; b++)
        {
            store.Write(new StoreBatch(inserts: [.. Enumerable.Range(1, 30).Select(i => Row((b * 30) + i, "lazy", size: 128 * 1024))]));
        }
    }

    /// <summary>Stores whose LiteDB engine is kept alive for the rest of the process: after a failed commit LiteDB may
    /// leave an active transaction whose finalizer throws (an unhandled exception on the finalizer thread ends the
    /// test run).</summary>
    private static readonly List<object> KeptAlive = [];

    private static object Defuse(LiteDbMessageStore store)
    {
        const System.Reflection.BindingFlags Private = System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;
        var db = typeof(LiteDbMessageStore).GetField("_db", Private)!.GetValue(store) ?? throw new InvalidOperationException("the store is not open");
        var engine = db.GetType().GetField("_engine", Private)!.GetValue(db)!;
        lock (KeptAlive)
        {
            KeptAlive.Add(engine);
        }

        return engine;
    }

    /// <summary>The LiteDB transactions still registered and not disposed, each with what its Dispose throws (what
    /// its finalizer would throw on the finalizer thread).</summary>
    private static List<string> LeftTransactions(object engine)
    {
        const System.Reflection.BindingFlags Private = System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;
        var monitor = engine.GetType().GetField("_monitor", Private)!.GetValue(engine)!;
        var transactions = (System.Collections.IDictionary)monitor.GetType().GetField("_transactions", Private)!.GetValue(monitor)!;
        var left = new List<string>();
        foreach (var t in transactions.Values.Cast<object>().ToList())
        {
            if (t.GetType().GetProperty("State")!.GetValue(t)!.ToString() == "Disposed")
            {
                continue;
            }

            try
            {
                ((IDisposable)t).Dispose();
                left.Add("an active transaction (its Dispose now works)");
            }
            catch (Exception ex)
            {
                left.Add($"an active transaction whose Dispose throws {ex.GetType().Name}: {ex.Message}");
            }
        }

        return left;
    }

    private LiteDbMessageStore Open(LiteDbStoreOptions? options = null)
    {
        var store = new LiteDbMessageStore(Database, options);
        store.Open();
        return store;
    }

    private static StoredMessage Row(long id, string queue, int size = 16, long due = 0) =>
        new(id, queue, 0, due, Enumerable.Range(0, size).Select(i => (byte)(id + i)).ToArray());

    /// <summary>Lowers this process's file size limit (RLIMIT_FSIZE), with SIGXFSZ ignored so a write past it fails with
    /// EFBIG (an IOException) instead of ending the process; disposing restores both.</summary>
    private sealed class FileSizeLimit : IDisposable
    {
        private const int RlimitFsize = 1;
        private const int Sigxfsz = 25;
        private static readonly nint SigIgn = 1;
        private readonly RLimit _old;
        private readonly nint _oldHandler;

        private FileSizeLimit(long bytes)
        {
            Assert.That(NativeMethods.getrlimit(RlimitFsize, out _old), Is.Zero);
            _oldHandler = NativeMethods.signal(Sigxfsz, SigIgn);
            var limit = new RLimit { Cur = (ulong)bytes, Max = _old.Max };
            Assert.That(NativeMethods.setrlimit(RlimitFsize, ref limit), Is.Zero);
        }

        public static FileSizeLimit Set(long bytes) => new(bytes);

        public void Dispose()
        {
            var old = _old;
            _ = NativeMethods.setrlimit(RlimitFsize, ref old);
            _ = NativeMethods.signal(Sigxfsz, _oldHandler);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Cur;
        public ulong Max;
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int getrlimit(int resource, out RLimit limit);

        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int setrlimit(int resource, ref RLimit limit);

        [DllImport("libc")]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern nint signal(int signal, nint handler);
    }
}
