using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// Faults found reviewing 4b62c46 (exact in-flight tracking) with a store. Each test fails on that code; the comment on
/// each says what goes wrong.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class IdleReviewTests : TempDatabaseFixture
{
    private HookedStore? _store;

    // A lazy DropHead queue whose head is still on disk owes the drop (BrokerQueue.OweDrop): the row is read back by a
    // load and dead-lettered then. BrokerQueue.IsIdleLocked counts ReadyCount = in memory + on disk - owed, and does
    // not look at _owedDrops or at a load under way (_loading), so a queue whose disk part is all owed reads as idle
    // although every owed row is yet to become a dead letter in its target. Here MaxLength 0 and a window of 2: a batch
    // of 6 puts 2 in memory (dropped at once) and 4 on disk (owed); the load of those 4 is held in the store read, and
    // WhenIdleAsync completes while only 2 of the 6 dead letters have reached the dead-letter queue.
    [Test]
    public async Task LazyQueue_HeadDropsOwedOnDisk_AreWorkUntilTheyAreDeadLettered()
    {
        using var release = new ManualResetEventSlim(false);
        var builder = new MessageBrokerBuilder()
            .UseStore(() => _store = new HookedStore(new SqliteMessageStore(Database)), new StorageOptions { LazyWindow = 2 })
            .AddQueue("dead")
            .AddQueue("lazy", o =>
            {
                o.Mode = QueueMode.Lazy;
                o.MaxLength = 0;
                o.Overflow = OverflowPolicy.DropHead;
                o.DeadLetterQueue = "dead";
            });
        await using var broker = builder.Build();
        _store!.AfterReadReady = (queue, _) =>
        {
            if (queue == "lazy")
            {
                release.Wait(TimeSpan.FromSeconds(30)); // a slow read of the disk part
            }
        };

        var handled = 0;
        await using var sink = broker.Subscribe<Order>("dead", (_, _) =>
        {
            Interlocked.Increment(ref handled);
            return ValueTask.CompletedTask;
        });

        try
        {
            await broker.PublishBatchAsync("", "lazy", Enumerable.Range(0, 6).Select(i => new Order(i)));
            var idle = broker.Engine().WhenIdleAsync();
            var early = await Task.WhenAny(idle, Task.Delay(TimeSpan.FromSeconds(3))) == idle;
            var handledWhenIdle = Volatile.Read(ref handled);
            release.Set();
            Assert.That(early, Is.False, $"WhenIdleAsync completed with {handledWhenIdle} of 6 dead letters handled: the owed head drops on disk were not counted");
        }
        finally
        {
            release.Set();
        }

        await broker.WaitForQueueAsync("dead", i => i.Acked == 6);
    }

    // DurableLog.Run hands a written batch to the applier (Hand) and only then clears _writing under the gate. The
    // applier applies it and calls Applied (InFlight.Signal) possibly before the writer cleared _writing; a waiter woken
    // by that signal sees HasUnappliedUnits (= _writing) still true and goes back to sleep, and clearing _writing
    // signals nobody. With AckDelay 0 every ack is followed by a write of its delete, so this is the last change of an
    // otherwise idle broker: WhenIdleAsync hangs although IsIdle() is true.
    [Test]
    public async Task StoreWriteEndingAfterItsAppliedSignal_StillWakesTheIdleWaiter()
    {
        const int Rounds = 1500;
        await using var broker = new MessageBrokerBuilder()
            .UseStore(() => new SqliteMessageStore(Database), new StorageOptions { AckDelay = TimeSpan.Zero })
            .AddQueue("q", o => o.Durable = true)
            .Build();
        var log = broker.Engine().Context.Durable!;
        var tracker = broker.Engine().Context.InFlight;
        var handled = 0;
        await using var subscription = broker.Subscribe<Order>("q", (_, _) =>
        {
            Interlocked.Increment(ref handled);
            return ValueTask.CompletedTask;
        });

        // Contention on the log's gate makes the writer wait between handing a batch over and clearing _writing.
        var stop = 0;
        var hammer = Task.Run(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                _ = log.HasUnappliedUnits;
            }
        });

        var hung = -1;
        try
        {
            for (var round = 1; round <= Rounds; round++)
            {
                await broker.SendAsync("q", new Order(round));
                var idle = broker.Engine().WhenIdleAsync();
                if (await Task.WhenAny(idle, Task.Delay(TimeSpan.FromSeconds(2))) != idle)
                {
                    hung = round;
                    break;
                }
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            await hammer.WithSafety();
        }

        Assert.That(hung, Is.EqualTo(-1), $"round {hung}: WhenIdleAsync did not complete; IsIdle() = {tracker.IsIdle()}, handled = {Volatile.Read(ref handled)}");
    }
}
