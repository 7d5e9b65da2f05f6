using MessageQueue.Queues;

namespace MessageQueue.Tests.Queues;

/// <summary>
/// The pieces of a queue's state, each on its own: what each owns and the rules it keeps. The queue-level behaviour is
/// covered by the queue contract suite; these pin the bookkeeping that is easy to get subtly wrong.
/// </summary>
[TestFixture]
public sealed class QueueStateTests
{
    private static QueueEntry Entry(string body) => new(body, null, "", "q", 0, 0);

    [Test]
    public void DelayedSet_TakesOnlyWhatIsDue_EarliestFirst_EqualDueTimesInTheOrderAdded()
    {
        var set = new DelayedSet();
        QueueEntry a = Entry("a"), b = Entry("b"), c = Entry("c");
        set.Add(c, 20);
        set.Add(a, 10);
        set.Add(b, 10);

        var taken = new List<QueueEntry>();
        while (set.TryTakeDue(15, out var e))
        {
            taken.Add(e);
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(taken, Is.EqualTo(new[] { a, b }));
            Assert.That(set.NextDue, Is.EqualTo(20));
            Assert.That(set.Clear(), Is.EqualTo(new[] { c }));
            Assert.That(set.NextDue, Is.EqualTo(long.MaxValue));
        }
    }

    [Test]
    public void ExpiryIndex_SweepsAreAskedForOnlyWhenEarlier_AndNeverCloserThanTheMinimumInterval()
    {
        var index = new ExpiryIndex(TimeSpan.FromTicks(100));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(index.AskSweep(500), Is.EqualTo(500));
            Assert.That(index.AskSweep(700), Is.Null, "a later sweep is covered by the one asked for");
            Assert.That(index.AskSweep(long.MaxValue), Is.Null, "never expires");
            Assert.That(index.TryStartSweep(499), Is.False);
            Assert.That(index.TryStartSweep(500), Is.True);
            Assert.That(index.SweepAt, Is.EqualTo(long.MaxValue), "a started sweep asks for the next itself");
            Assert.That(index.AskSweep(510), Is.EqualTo(600), "not before the minimum interval after the last sweep");
        }
    }

    [Test]
    public void ExpiryIndex_TakesExpiredRecordsInExpiryOrder_AndAsksForARebuildWhenRecordsOutnumberTheList()
    {
        var index = new ExpiryIndex(TimeSpan.Zero);
        QueueEntry a = Entry("a"), b = Entry("b");
        index.Add(b, 30);
        index.Add(a, 10);
        Assert.That(index.TryTakeExpired(20, out var first), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(first, Is.SameAs(a));
            Assert.That(index.TryTakeExpired(20, out _), Is.False);
            Assert.That(index.NextExpiry, Is.EqualTo(30));
            Assert.That(index.NeedsRebuild(readyCount: 0), Is.False, "a margin of 1024 records");
        }

        for (var i = 0; i < 1100; i++)
        {
            index.Add(Entry("x"), 40);
        }

        Assert.That(index.NeedsRebuild(readyCount: 10), Is.True);
        Assert.That(index.NeedsRebuild(readyCount: int.MaxValue), Is.False, "no overflow on a huge list");
    }

    [Test]
    public void DiskBacklog_OwedDropsAreCountedAgainstTheReadyOnes_AndSettledWhenRead()
    {
        var disk = new DiskBacklog(cursor: 5);
        disk.Spill(6, 100);
        disk.Spill(7, 300);
        Assert.That(disk.TryOweDrop(), Is.True);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(disk.ReadyCount, Is.EqualTo(1));
            Assert.That(disk.ReadyBytes, Is.EqualTo(200), "the average size stands for the owed row");
            Assert.That(disk.TryOweDrop(), Is.True);
            Assert.That(disk.TryOweDrop(), Is.False, "every row is owed");
        }

        disk.Read(6, 100);
        disk.OweNoMore(100);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(disk.Cursor, Is.EqualTo(6));
            Assert.That((disk.Count, disk.Bytes, disk.OwedDrops, disk.ReadyCount), Is.EqualTo((1, 300L, 1, 0)));
        }
    }

    [Test]
    public void DiskBacklog_MissingRowsAndClear_LeaveTheCursorPastEverythingSpilled()
    {
        var disk = new DiskBacklog(cursor: 0);
        for (var id = 1; id <= 4; id++)
        {
            disk.Spill(id, 10);
        }

        disk.Read(1, 10);
        Assert.That(disk.ForgetMissing(held: 3, loaded: 1, upTo: 4), Is.EqualTo(2));
        using (Assert.EnterMultipleScope())
        {
            Assert.That((disk.Cursor, disk.Count), Is.EqualTo((4L, 1)));
            Assert.That(disk.Clear(out var after, out var upTo), Is.EqualTo(1));
            Assert.That((after, upTo), Is.EqualTo((4L, 4L)));
            Assert.That(disk.IsEmpty, Is.True);
        }

        disk.PassedInMemory(3);
        Assert.That(disk.Cursor, Is.EqualTo(4), "the cursor never moves back");
    }

    [Test]
    public void DiskBacklog_RowsMovedAwayWhileADropIsOwed_LeaveNoOwedBytesBehind()
    {
        var disk = new DiskBacklog(cursor: 0);
        disk.Spill(1, 100);
        disk.Spill(2, 100);
        Assert.That(disk.TryOweDrop(), Is.True);
        disk.Move(100, taken: true); // a redrive takes both rows
        disk.Move(100, taken: true);
        Assert.That((disk.Count, disk.OwedDrops, disk.ReadyCount, disk.ReadyBytes), Is.EqualTo((0, 0, 0, 0L)), "no negative ready bytes against MaxLengthBytes");
        disk.Spill(3, 50);
        Assert.That(disk.ReadyBytes, Is.EqualTo(50));
    }

    [Test]
    public void DeduplicationWindow_ForgetsByAgeAndCapacity_AndWakesWaitersWhenAPendingWriteEnds()
    {
        var window = DeduplicationWindow.For("q", new QueueOptions { DeduplicationWindow = TimeSpan.FromTicks(100), DeduplicationCapacity = 2 }, store: null)!;
        window.Remember("a", at: 0, store: false);
        window.Remember("b", at: 50, store: false);
        window.Remember("c", at: 60, store: false); // over capacity: "a" goes early
        using (Assert.EnterMultipleScope())
        {
            Assert.That(window.Contains("a"), Is.False);
            Assert.That(window.Contains("b") && window.Contains("c"), Is.True);
        }

        window.ForgetExpired(now: 155);
        Assert.That((window.Contains("b"), window.Contains("c")), Is.EqualTo((false, true)));

        window.Hold("d");
        window.Hold("d");
        var outcome = window.PendingOutcome();
        window.Release("d");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(outcome.IsCompleted, Is.True, "each write's end wakes the waiters, who plan again");
            Assert.That(window.IsPending("d"), Is.True, "one write of d is still under way");
        }

        window.Release("d");
        Assert.That(window.IsPending("d"), Is.False);
        Assert.That(DeduplicationWindow.For("q", new QueueOptions(), store: null), Is.Null, "no window, no state");
    }

    [Test]
    public void LengthLimits_CountPromisedPlaces_AndFailLaterWaitersOnlyWhenFailedForever()
    {
        var limits = new LengthLimits(new QueueOptions { MaxLength = 2, MaxLengthBytes = 100 });
        limits.Reserve(40, held: true);
        limits.PromiseDueRow(40, held: true);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(limits.HasRoomFor(readyCount: 0, readyBytes: 0, count: 1, bytes: 10), Is.False, "two places are promised");
            Assert.That(limits.Describe(readyCount: 2, readyBytes: 90, adding: 1, addingBytes: 20), Is.EqualTo("MaxLength = 2, 2 ready; MaxLengthBytes = 100, 90 bytes ready, 20 more"));
        }

        limits.Reserve(40, held: false);
        Assert.That(limits.HasRoomFor(0, 0, 1, 20), Is.True);

        var waiting = limits.WaitForRoom();
        limits.FailWaiters(new InvalidOperationException("deleted"), forever: false);
        var later = limits.WaitForRoom();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(waiting.IsFaulted, Is.True);
            Assert.That(later.IsCompleted, Is.False, "a queue's deletion fails the waiters of that moment only");
        }

        limits.FailWaiters(new ObjectDisposedException("broker"), forever: true);
        Assert.That(limits.WaitForRoom().IsFaulted, Is.True, "after the broker stops, a late publisher fails too");
    }
}
