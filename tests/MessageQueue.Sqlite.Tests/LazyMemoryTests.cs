using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>A lazy queue's memory does not grow with its backlog on disk, nor with its delayed messages' bodies.</summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(300_000)]
public sealed class LazyMemoryTests : TempDatabaseFixture
{
    private sealed record Blob(int N, string Padding);

    private IMessageBroker Build(TimeProvider? time = null)
    {
        var builder = new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.Synchronous = SqliteSynchronous.Normal)
            .AddQueue("lazy", o => { o.Mode = QueueMode.Lazy; o.Durable = true; });
        if (time is not null)
        {
            builder.UseTimeProvider(time);
        }

        return builder.Build();
    }

    private static async Task PublishAsync(IMessageBroker broker, int from, int count, string padding, PublishOptions? options = null)
    {
        for (var i = from; i < from + count; i += 1000)
        {
            await broker.PublishBatchAsync("", "lazy", Enumerable.Range(i, Math.Min(1000, from + count - i)).Select(n => new Blob(n, padding)), _ => options);
        }
    }

    private static long Heap() => GC.GetTotalMemory(forceFullCollection: true);

    [Test]
    public async Task Backlog_OnDisk_TakesNoMemoryPerMessage()
    {
        await using var broker = Build();
        await PublishAsync(broker, 0, 10_000, "");
        var small = Heap();
        await PublishAsync(broker, 10_000, 290_000, "");
        var large = Heap();
        await TestContext.Out.WriteLineAsync($"heap with 10,000 on disk: {small / 1024.0:F0} KB; with 300,000: {large / 1024.0:F0} KB; difference {(large - small) / 1024.0:F0} KB");

        Assert.That(broker.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(300_000));
        Assert.That(large - small, Is.LessThan(1024 * 1024), "290,000 more messages on disk must not cost memory per message (12 bytes each would be 3.3 MB)");

        await using var consumer = broker.Consume<Blob>("lazy", o => { o.Prefetch = 100; o.AckMode = AckMode.Auto; });
        for (var expected = 0; expected < 300_000; expected++)
        {
            var d = await consumer.ReceiveAsync().AsTask().WithSafety();
            if (d.Message.N != expected)
            {
                Assert.Fail($"expected {expected}, got {d.Message.N}");
            }
        }
    }

    [Test]
    public async Task DelayedMessages_KeepNoBodyInMemory_AtPublishAndAfterRecovery()
    {
        const int Count = 2_000;
        var padding = new string('x', 16 * 1024);
        var time = new ManualTimeProvider();
        long before, afterPublish;
        await using (var broker = Build(time))
        {
            before = Heap();
            await PublishAsync(broker, 0, Count, padding, new PublishOptions { Delay = TimeSpan.FromHours(1) });
            afterPublish = Heap();
            Assert.That(broker.Management.GetQueueInfo("lazy").Delayed, Is.EqualTo(Count));
        }

        padding = null!;
        var beforeRecovery = Heap();
        await using var restarted = Build(time);
        var afterRecovery = Heap();
        await TestContext.Out.WriteLineAsync($"{Count} delayed 16 KB messages: +{(afterPublish - before) / 1024.0:F0} KB at publish, +{(afterRecovery - beforeRecovery) / 1024.0:F0} KB after recovery");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(restarted.Management.GetQueueInfo("lazy").Delayed, Is.EqualTo(Count));
            Assert.That(afterPublish - before, Is.LessThan(2 * 1024 * 1024), "32 MB of bodies must not stay in memory");
            Assert.That(afterRecovery - beforeRecovery, Is.LessThan(2 * 1024 * 1024), "nor be read back at recovery");
        }

        time.Advance(TimeSpan.FromHours(1));
        await restarted.WaitForQueueAsync("lazy", i => i.Ready == Count && i.Delayed == 0);
        await using var consumer = restarted.Consume<Blob>("lazy", o => { o.Prefetch = 50; o.AckMode = AckMode.Auto; });
        var seen = new List<int>();
        for (var i = 0; i < Count; i++)
        {
            seen.Add((await consumer.ReceiveAsync().AsTask().WithSafety()).Message.N);
        }

        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, Count)), "due in publish order, read back in order");
    }
}
