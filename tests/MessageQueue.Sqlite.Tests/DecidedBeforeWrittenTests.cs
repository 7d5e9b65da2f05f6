using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// What a durable publish, move or delivery writes is decided before it is written: a refused, duplicate, cancelled
/// or failed publish never has a row, a redrive moves rows in one transaction, and a delivery that never reached
/// code is never counted in the store. Each test "kills" the broker by dropping every write from some moment on
/// (<see cref="CrashingStore"/>) and restarts on the same file.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class DecidedBeforeWrittenTests : TempDatabaseFixture
{
    private CrashingStore? _store;

    private IMessageBroker Build(Action<MessageBrokerBuilder> declare, bool crashable = true, TimeSpan? shutdown = null)
    {
        var builder = new MessageBrokerBuilder();
        if (crashable)
        {
            builder.UseStore(() => _store = new CrashingStore(new SqliteMessageStore(Database)));
        }
        else
        {
            builder.UseSqlite(Database);
        }

        if (shutdown is { } timeout)
        {
            builder.WithShutdownTimeout(timeout);
        }

        declare(builder);
        return builder.Build();
    }

    private async Task<List<int>> IdsAfterRestartAsync(Action<MessageBrokerBuilder> declare, string queue)
    {
        await using var restarted = Build(declare, crashable: false);
        return [.. (await restarted.Management.PeekAsync(queue, int.MaxValue)).Select(m => ((Order)m.Body).Id)];
    }

    [Test]
    public async Task RefusedPublish_IsNotThereAfterACrash()
    {
        void Declare(MessageBrokerBuilder b) => b.AddQueue("q", o => { o.Durable = true; o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; });
        await using (var broker = Build(Declare))
        {
            await broker.SendAsync("q", new Order(1));
            await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync("q", new Order(2)));
            _store!.Crash();
        }

        Assert.That(await IdsAfterRestartAsync(Declare, "q"), Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public async Task DuplicatePublish_IsNotThereAfterACrash()
    {
        void Declare(MessageBrokerBuilder b) => b.AddQueue("q", o => { o.Durable = true; o.DeduplicationWindow = TimeSpan.FromMinutes(5); });
        await using (var broker = Build(Declare))
        {
            await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "a" });
            var again = await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "a" });
            Assert.That(again.IsDuplicate, Is.True);
            _store!.Crash();
        }

        Assert.That(await IdsAfterRestartAsync(Declare, "q"), Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public async Task RefusedTransaction_IsNotThereAfterACrash()
    {
        void Declare(MessageBrokerBuilder b) => b
            .AddQueue("q", o => o.Durable = true)
            .AddQueue("small", o => { o.Durable = true; o.MaxLength = 1; o.Overflow = OverflowPolicy.RejectPublish; });
        await using (var broker = Build(Declare))
        {
            await broker.SendAsync("small", new Order(0));
            await using var tx = broker.BeginTransaction();
            await tx.SendAsync("q", new Order(1));
            await tx.SendAsync("small", new Order(2));
            await Assert.ThrowsAsync<QueueFullException>(async () => await tx.CommitAsync());
            _store!.Crash();
        }

        Assert.Multiple(async () =>
        {
            Assert.That(await IdsAfterRestartAsync(Declare, "q"), Is.Empty);
            Assert.That(await IdsAfterRestartAsync(Declare, "small"), Is.EqualTo(new[] { 0 }));
        });
    }

    [Test]
    public async Task CancelledBlockedPublish_IsNotThereAfterACrash()
    {
        void Declare(MessageBrokerBuilder b) => b.AddQueue("q", o => { o.Durable = true; o.MaxLength = 1; o.Overflow = OverflowPolicy.Block; });
        await using (var broker = Build(Declare))
        {
            await broker.SendAsync("q", new Order(1));
            using var cancel = new CancellationTokenSource();
            var blocked = broker.SendAsync("q", new Order(2), cancellationToken: cancel.Token).AsTask();
            await broker.WaitForQueueAsync("q", _ => true); // it waits for room
            await cancel.CancelAsync();
            Assert.That(async () => await blocked, Throws.InstanceOf<OperationCanceledException>());
            _store!.Crash();
        }

        Assert.That(await IdsAfterRestartAsync(Declare, "q"), Is.EqualTo(new[] { 1 }));
    }

    [Test]
    public async Task FailedWrite_PublishThrows_AndTheMessageIsInNoQueue_NowOrAfterARestart()
    {
        void Declare(MessageBrokerBuilder b) => b.AddQueue("q", o => o.Durable = true).AddQueue("mem");
        await using (var broker = Build(b => Declare(b.AddExchange("fan", ExchangeType.Fanout).Bind("fan", "q").Bind("fan", "mem"))))
        {
            _store!.FailNextWrite();
            await Assert.ThrowsAsync<MessageStoreException>(async () => await broker.PublishAsync("fan", "", new Order(1)));
            Assert.Multiple(() =>
            {
                Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.Zero);
                Assert.That(broker.Management.GetQueueInfo("mem").Ready, Is.Zero, "a publish that threw is in no queue");
            });
            await broker.PublishAsync("fan", "", new Order(2));
        }

        Assert.That(await IdsAfterRestartAsync(b => Declare(b.AddExchange("fan", ExchangeType.Fanout).Bind("fan", "q").Bind("fan", "mem")), "q"), Is.EqualTo(new[] { 2 }));
    }

    [Test]
    public async Task GracefulRestart_PrefetchedDeliveries_DoNotSpendTheDeliveryLimit()
    {
        void Declare(MessageBrokerBuilder b) => b
            .AddQueue("dead", o => o.Durable = true)
            .AddQueue("q", o => { o.Durable = true; o.MaxDeliveryCount = 1; o.DeadLetterQueue = "dead"; });
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (var broker = Build(Declare, crashable: false, shutdown: TimeSpan.Zero))
        {
            for (var i = 1; i <= 5; i++)
            {
                await broker.SendAsync("q", new Order(i));
            }

            broker.Subscribe<Order>("q", async (_, ct) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct); // in hand until the shutdown cancels it
            }, o => o.Prefetch = 10);
            await started.Task.WithSafety();
            await broker.WaitForQueueAsync("q", i => i.Unacked == 5);
        }

        await using var restarted = Build(Declare, crashable: false);
        await using var consumer = restarted.Consume<Order>("q", o => o.Prefetch = 1);
        var got = new List<(int, int)>();
        for (var i = 0; i < 4; i++)
        {
            var d = await consumer.ReceiveAsync().AsTask().WithSafety();
            got.Add((d.Message.Id, d.DeliveryCount));
            await d.AckAsync();
        }

        await TestContext.Out.WriteLineAsync("Q " + restarted.Management.GetQueueInfo("q") + " D " + restarted.Management.GetQueueInfo("dead"));
        await restarted.WaitForQueueAsync("dead", i => i.Ready == 1);
        var dead = await restarted.Management.PeekAsync("dead");
        Assert.Multiple(() =>
        {
            Assert.That(got, Is.EqualTo(new[] { (2, 1), (3, 1), (4, 1), (5, 1) }), "prefetched only: first deliveries after the restart");
            Assert.That(dead.Select(m => ((Order)m.Body).Id), Is.EqualTo(new[] { 1 }), "the one in hand was delivered once: at its limit");
        });
    }
}
