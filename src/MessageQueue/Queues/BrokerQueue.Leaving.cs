using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Messages leaving: requeued, dead-lettered (sent once the lock is released), or gone for good with their rows.</summary>
internal sealed partial class BrokerQueue
{
    private void Requeue(QueueEntry entry, TimeSpan delay)
    {
        if (entry.DeliveryCount >= _maxDeliveries)
        {
            Kill(entry, DeathRecord.DeliveryLimit, detail: null, exception: null);
            return;
        }

        if (delay > TimeSpan.Zero)
        {
            var due = Durations.After(_context.Scheduler.NowTicks, delay);
            entry.SetState(EntryState.Delayed);
            _delayed.Add(entry, due);
            WakeAt(due);
            return;
        }

        entry.SetState(EntryState.Ready);
        ReturnToReady(entry);
    }

    /// <summary>Takes a message out for dead-lettering (caller holds the lock); its row, if any, goes with the dead
    /// letter and is deleted once the dead letter is in its target (see <see cref="DeadLetterRouter"/>).</summary>
    private void Kill(QueueEntry entry, string reason, string? detail, Exception? exception)
    {
        entry.SetState(EntryState.Gone);
        var storeId = entry.StoreId;
        entry.StoreId = 0;
        (_deadLetters ??= []).Add(new DeadLetter(entry, reason, detail, exception, storeId));
        _context.Observer?.DeadLettered(Name, entry, reason, detail, exception);
    }

    /// <summary>A stored message left the queue for good (caller holds the lock): its row is deleted, in a later batch.</summary>
    private void ForgetStored(QueueEntry entry)
    {
        if (entry.StoreId > 0)
        {
            _context.Durable!.Delete(entry.StoreId);
            entry.StoreId = 0;
        }
    }

    private List<DeadLetter>? TakeDeadLetters()
    {
        var dead = _deadLetters;
        _deadLetters = null;
        if (dead is not null)
        {
            Interlocked.Add(ref _deadInTransit, dead.Count); // work until sent (see InFlight)
        }

        return dead;
    }

    /// <summary>Dead letters taken from this queue and not yet in their targets (see <see cref="InFlight"/>).</summary>
    private int _deadInTransit;

    /// <summary>Sends dead letters taken under the lock on, once it is released (they enter other queues, whose
    /// locks must not nest in this one). Their rows here are deleted with their rows in their targets.</summary>
    private void SendDeadLetters(List<DeadLetter>? dead)
    {
        if (dead is not null)
        {
            try
            {
                _context.DeadLetters.Send(this, dead);
            }
            finally
            {
                Interlocked.Add(ref _deadInTransit, -dead.Count); // in their targets (or dropped) now
            }
        }

        Notify();
    }

    internal void CountDeadLettered(bool routed, string reason)
    {
        if (routed)
        {
            Interlocked.Increment(ref _counters.DeadLettered);
        }
        else
        {
            Interlocked.Increment(ref _counters.Dropped);
        }

        var index = Array.IndexOf(DeathReasons, reason);
        if (index >= 0)
        {
            Interlocked.Increment(ref _deaths[(index * 2) + (routed ? 1 : 0)]);
        }

        Notify();
    }

    /// <summary>The dead-letter reasons counted per queue (for metrics), in <see cref="_deaths"/>'s order.</summary>
    private static readonly string[] DeathReasons = [DeathRecord.Expired, DeathRecord.MaxLength, DeathRecord.Rejected, DeathRecord.DeliveryLimit];

    // Messages that left for each reason: [reason * 2] dropped, [reason * 2 + 1] routed to a target (Interlocked).
    private readonly long[] _deaths = new long[8];

    /// <summary>How many messages left this queue for each dead-letter reason, routed to a target or dropped (only the
    /// pairs that happened).</summary>
    internal IEnumerable<(string Reason, bool Routed, long Count)> DeadLetterCounts()
    {
        for (var i = 0; i < _deaths.Length; i++)
        {
            if (Interlocked.Read(ref _deaths[i]) is var count and > 0)
            {
                yield return (DeathReasons[i / 2], i % 2 == 1, count);
            }
        }
    }
}
