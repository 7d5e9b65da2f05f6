using MessageQueue.Consuming;
using MessageQueue.Scheduling;

namespace MessageQueue.Queues;

/// <summary>
/// Time to live. An entry's TTL is the smaller of the queue's <c>MessageTtl</c> and the message's own
/// expiration, counted from when it entered this queue, on the broker clock. Expired entries are removed
/// when taken at the head, when a consumer claims one from its window (so none is ever delivered), and by
/// sweeps scheduled at the earliest expiry, at most one per <see cref="SweepInterval"/>, so that entries behind
/// unexpired ones leave too. Sweeps never scan the ready list: entries that may expire are indexed by expiry time
/// in a heap when they become ready, and a sweep pops what is due, removing each from the ready list where it
/// stands (O(log n) each). Index records of entries that left the list meanwhile are skipped when popped, and the
/// heap is rebuilt from the list when such records outnumber the live ones, so it stays proportional to the list.
/// </summary>
internal sealed partial class BrokerQueue
{
    /// <summary>The shortest time between two sweeps of the ready list.</summary>
    internal static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);

    private readonly ExpiryIndex _expiries = new(SweepInterval);

    private readonly long _queueTtlTicks;

    private long QueueTtlTicks => _queueTtlTicks;

    /// <summary>How many entries whole-list operations have looked at (for tests that expiry never scans the list).</summary>
    internal long ReadyVisited
    {
        get
        {
            lock (_sync)
            {
                return _ready.Visited;
            }
        }
    }

    /// <summary>A TTL in ticks, or -1 for none (null, or "never": <see cref="TimeSpan.MaxValue"/>, <see cref="Timeout.InfiniteTimeSpan"/>).</summary>
    private static long TtlTicksOf(TimeSpan? ttl) => ttl is { } t && !Durations.IsInfinite(t) && t >= TimeSpan.Zero ? t.Ticks : -1;

    /// <summary>The entry's TTL in ticks, or -1 when it has none.</summary>
    private long TtlTicks(QueueEntry entry)
    {
        var queueTtl = QueueTtlTicks;
        var messageTtl = TtlTicksOf(entry.RawProperties?.Expiration);
        return queueTtl < 0 ? messageTtl : messageTtl < 0 ? queueTtl : Math.Min(queueTtl, messageTtl);
    }

    private bool MayExpire(QueueEntry entry) => QueueTtlTicks >= 0 || TtlTicksOf(entry.RawProperties?.Expiration) >= 0;

    private long ExpiryOf(QueueEntry entry)
    {
        var ttl = TtlTicks(entry);
        return ttl < 0 ? long.MaxValue : Durations.After(entry.TimestampTicks, ttl);
    }

    private long NowForTtl => _context.Clock.UtcNowTicks();

    /// <summary>Whether the entry's TTL (positive) has passed. TTL zero is decided at enqueue.</summary>
    private bool IsExpired(QueueEntry entry, long nowTicks)
    {
        var ttl = TtlTicks(entry);
        return ttl > 0 && nowTicks - entry.TimestampTicks >= ttl;
    }

    /// <summary>Checked by a consumer right after it claims a delivery: an expired one is dead-lettered instead
    /// of delivered. Returns true when the delivery may go to the consumer's code.</summary>
    internal bool ClaimIsFresh(ConsumerCore consumer, in Handoff handoff)
    {
        var entry = handoff.Entry;
        if (!MayExpire(entry) || !IsExpired(entry, NowForTtl))
        {
            return true;
        }

        using (Lock())
        {
            if (CheckSettle(consumer, entry, handoff.Tag) != SettleResult.Ok)
            {
                return false;
            }

            // It was counted as delivered when written to the window; it never reached the consumer's code.
            UncountDelivery(entry);

            Expire(entry);
            Settled(consumer);
        }
        return false;
    }

    private void Expire(QueueEntry entry)
    {
        _counters.Expired++;
        Kill(entry, DeathRecord.Expired, detail: null, exception: null);
    }

    /// <summary>After a lock-free enqueue of an entry with a TTL: TTL zero is delivered at once or expires;
    /// otherwise a sweep is scheduled by its expiry if none is earlier.</summary>
    private void AfterEnqueueWithTtl(QueueEntry entry)
    {
        var ttl = TtlTicks(entry);
        if (ttl < 0)
        {
            return;
        }

        var expiry = Durations.After(entry.TimestampTicks, ttl);
        if (ttl > 0 && expiry >= _expiries.SweepAt)
        {
            return;
        }

        using (Lock())
        {
            if (ttl == 0)
            {
                DrainIncoming();
                Dispatch();
                ExpireIfStillReady(entry); // nobody was waiting for it
            }
            else
            {
                ScheduleSweep(expiry);
            }
        }
    }

    /// <summary>Expires an entry that is still in the ready list, where it stands (caller holds the lock; the entry
    /// was drained into the list, so <see cref="EntryState.Ready"/> means it is there).</summary>
    private void ExpireIfStillReady(QueueEntry entry)
    {
        if (entry.State == EntryState.Ready)
        {
            _ready.Remove(entry);
            Expire(entry);
        }
    }

    /// <summary>Indexes an entry that just became ready by its expiry, and schedules a sweep for it (caller holds the lock).</summary>
    private void IndexExpiry(QueueEntry entry)
    {
        if (!MayExpire(entry))
        {
            return;
        }

        var expiry = ExpiryOf(entry);
        if (expiry == long.MaxValue)
        {
            return;
        }

        _expiries.Add(entry, expiry);
        if (_expiries.NeedsRebuild(_ready.Count))
        {
            RebuildExpiries(); // mostly records of entries that left: start again from the list
        }

        ScheduleSweep(expiry);
    }

    private void RebuildExpiries()
    {
        var index = _expiries;
        index.Clear();
        _ready.ForEach(e =>
        {
            if (MayExpire(e) && ExpiryOf(e) is var expiry && expiry != long.MaxValue)
            {
                index.Add(e, expiry);
            }
        });
    }

    private void ScheduleSweep(long expiry)
    {
        if (_expiries.AskSweep(expiry) is { } due)
        {
            WakeAt(due);
        }
    }

    /// <summary>Removes every expired ready entry, wherever it sits, and schedules the next sweep (caller holds the
    /// lock). Pops the expiry index, never scans the ready list.</summary>
    private void SweepIfDue(long schedulerNow)
    {
        if (!_expiries.TryStartSweep(schedulerNow))
        {
            return;
        }

        var now = NowForTtl;
        DrainIncoming();
        var expired = 0;
        while (_expiries.TryTakeExpired(now, out var entry))
        {
            if (entry.State == EntryState.Ready && IsExpired(entry, now))
            {
                ExpireIfStillReady(entry);
                expired++;
            }
        }

        if (_limits.IsLimited && expired > 0)
        {
            RoomFreed();
        }

        ScheduleSweep(_expiries.NextExpiry);
    }
}
