using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>The queue lock as a scope, and what the broker's in-flight tracking asks of a queue under it.</summary>
internal sealed partial class BrokerQueue
{
    /// <summary>Takes the queue lock until the scope ends; then the dead letters made under it are taken, the lock is
    /// released, and they are sent on (they enter other queues, whose locks must not nest in this one) and the queue's
    /// watchers notified. The one hand-off of dead letters used by every locked operation:
    /// <c>using (Lock()) { ... }</c>.</summary>
    private Locked Lock() => new(this);

    /// <summary>The test harness's observer, or null.</summary>
    internal IBrokerObserver? Observer => _context.Observer;

    /// <summary>The broker's in-flight tracking.</summary>
    internal InFlight InFlight => _context.InFlight;

    private readonly ref struct Locked
    {
        private readonly BrokerQueue _queue;

        internal Locked(BrokerQueue queue)
        {
            _queue = queue;
            queue._sync.Enter();
        }

        public void Dispose()
        {
            List<DeadLetter>? dead;
            try
            {
                dead = _queue.TakeDeadLetters();
            }
            finally
            {
                _queue._sync.Exit();
            }

            _queue.SendDeadLetters(dead);
        }
    }

    /// <summary>What work this queue holds (caller holds the lock; see <see cref="InFlight"/>), or null for none:
    /// something ready (in memory, in the inbox or on disk), a delivery unsettled, a dead letter on its way out,
    /// something delayed that is due or waiting for room.</summary>
    internal string? BusyLocked(long nowTicks, bool readyNeedsConsumer = false)
    {
        var transit = Volatile.Read(ref _deadInTransit);
        if (_deleted)
        {
            return transit == 0 ? null : $"{transit} dead letter(s) on their way out";
        }

        var consumed = !readyNeedsConsumer || _consumers.Exists(c => c.Active);
        if ((!_incoming.IsEmpty || ReadyCount > 0) && consumed)
        {
            return $"{ReadyCount + _incoming.Count} ready";
        }

        if (_disk.OwedDrops > 0 || _loading)
        {
            return _disk.OwedDrops > 0 ? $"{_disk.OwedDrops} head drop(s) owed on disk" : "a read of the backlog on disk";
        }

        if (_limits.Reserved > 0)
        {
            return $"{_limits.Reserved} place(s) reserved for publishes being written";
        }

        if (_deadLetters is { Count: > 0 } || transit > 0)
        {
            return $"{(_deadLetters?.Count ?? 0) + transit} dead letter(s) on their way out";
        }

        if (UnsettledWork(nowTicks) is { } unsettled)
        {
            return unsettled;
        }

        if (_delayed.NextDue <= nowTicks || (_delayedRows?.TryPeek(out _, out var dueRow) == true && dueRow.Due <= nowTicks))
        {
            return "delayed messages due";
        }

        // Due messages waiting for room in a full queue nobody consumes cannot progress either.
        var waiting = (consumed ? (_blockedDue?.Count ?? 0) + (_blockedDueRows?.Count ?? 0) : 0) + _becomingDue;
        return waiting > 0 ? $"{waiting} due message(s) joining" : null;
    }

    /// <summary>The consumers' unsettled deliveries that are work (caller holds the lock): an in-place retry not yet due
    /// is not.</summary>
    private string? UnsettledWork(long nowTicks)
    {
        var unacked = 0;
        foreach (var c in _consumers)
        {
            unacked += c.InFlight;
            if (!c.HasRetryWaits)
            {
                continue;
            }

            foreach (var (_, retryDue) in c.RetryWaits)
            {
                if (retryDue <= nowTicks)
                {
                    return "an in-place retry due";
                }

                unacked--; // an in-place retry not yet due is not work
            }
        }

        return unacked > 0 ? $"{unacked} unacked" : null;
    }
}
