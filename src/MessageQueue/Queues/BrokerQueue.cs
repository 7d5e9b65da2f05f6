using System.Diagnostics;
using MessageQueue.Consuming;
using MessageQueue.Scheduling;

using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>
/// One queue: ready messages in order, delayed messages in a heap, consumers served round-robin within
/// their prefetch windows. Every state change happens under one lock; dead letters produced under the lock
/// are routed after it is released (they enter other queues, whose locks must not nest in this one), and
/// consumer code never runs under it (channel continuations run asynchronously).
/// </summary>
/// <remarks>
/// <para>The queue coordinates; its state lives in collaborators, each owning one part and used under the queue's
/// lock (one lock, because a settle, an expiry or an admission changes several parts at once and must be atomic):</para>
/// <list type="bullet">
/// <item><see cref="ReadyList"/>: ready entries in queue order (by priority when prioritized), with their bytes.</item>
/// <item><see cref="DelayedSet"/>: delayed publishes and delayed redeliveries by due time.</item>
/// <item><see cref="ExpiryIndex"/>: ready entries by expiry, and when the next TTL sweep is due.</item>
/// <item><see cref="LengthLimits"/>: the limits, places promised against them, and publishers blocked for room.</item>
/// <item><see cref="DeduplicationWindow"/>: the ids remembered, and publishes of an id being written.</item>
/// <item><see cref="DiskBacklog"/>: a lazy queue's ready rows on disk only, and head drops owed to them.</item>
/// <item><see cref="QueueCounters"/>: lifetime counters.</item>
/// <item>The store (<see cref="Storage.DurableLog"/>) through <c>BrokerQueue.Storage</c>; dead letters through
/// <see cref="DeadLetterRouter"/>, handed over by the one <c>Lock()</c> scope (<c>BrokerQueue.Locking</c>).</item>
/// </list>
/// <para>The queue itself owns the lock-free inbox (<c>_incoming</c>, <c>_waiting</c>), its consumers and their
/// round-robin, the entry sequence, the scheduler wake-up, the lazy loader's state and the deleted flag.</para>
/// </remarks>
[DebuggerDisplay("Queue '{Name}' ready={_ready.Count} delayed={_delayed.Count}")]
internal sealed partial class BrokerQueue : IDueTarget
{
    private readonly Lock _sync = new();
    private readonly BrokerContext _context;
    private readonly ReadyList _ready;

    // Published messages not yet in _ready: producers append here without the lock; every locked section
    // first moves them into _ready in order (DrainIncoming), so they get their sequence numbers there.
    private readonly System.Collections.Concurrent.ConcurrentQueue<QueueEntry> _incoming = new();

    // How many consumers wait on an empty window with room in it; producers take the lock only then.
    private int _waiting;
    private readonly DelayedSet _delayed = new();
    private readonly List<ConsumerCore> _consumers = [];
    private readonly long _ackTimeoutTicks;
    private readonly bool _extended;
    private readonly int _maxDeliveries;
    private List<DeadLetter>? _deadLetters;
    private long _sequence;
    private long _wakeAt = long.MaxValue;
    private readonly bool _prioritized;
    private int _roundRobin;
    private bool _deleted;
    private QueueCounters _counters;

    internal BrokerQueue(string name, QueueOptions options, BrokerContext context)
    {
        Name = name;
        Options = options;
        _context = context;
        _ackTimeoutTicks = options.AckTimeout is { } ackTimeout && !Durations.IsInfinite(ackTimeout) ? ackTimeout.Ticks : 0;
        _maxDeliveries = options.MaxDeliveryCount ?? int.MaxValue;
        _queueTtlTicks = TtlTicksOf(options.MessageTtl);
        _extended = _ackTimeoutTicks > 0 || ((options.Durable || options.Mode == QueueMode.Lazy) && context.Durable is not null);
        _ready = new ReadyList(options.MaxPriority ?? 0, countBytes: options.MaxLengthBytes is not null);
        _prioritized = options.MaxPriority is not null;
        _limits = new LengthLimits(options);
        if ((options.Durable || options.Mode == QueueMode.Lazy) && context.Durable is not null)
        {
            _stored = true;
            if (options.Mode == QueueMode.Lazy)
            {
                _lazy = true;
                _window = context.Durable.Options.LazyWindow;
                _disk = new DiskBacklog(context.Durable.LastId); // rows already stored belong to others (or are recovered: see PrepareRecovery)
            }
        }

        _dedup = DeduplicationWindow.For(name, options, RemembersDurably ? context.Durable : null);
    }

    internal string Name { get; }

    internal QueueOptions Options { get; }

    /// <summary>Makes an entry for this queue: an <see cref="ExtendedEntry"/> when the queue stores messages or times
    /// acks, a plain one otherwise.</summary>
    internal QueueEntry NewEntry(object body, MessageProperties? properties, string exchange, string routingKey, long timestampTicks, byte priority) =>
        _extended
            ? new ExtendedEntry(body, properties, exchange, routingKey, timestampTicks, priority)
            : new QueueEntry(body, properties, exchange, routingKey, timestampTicks, priority);

    internal bool IsDeleted => Volatile.Read(ref _deleted);

    /// <summary>The broker's instruments (delivery latency is recorded when code takes a delivery).</summary>
    internal Diagnostics.BrokerMetrics Metrics => _context.Metrics;

    /// <summary>The broker clock's now, in UTC ticks (as entries' timestamps).</summary>
    internal long ClockTicks => _context.Clock.UtcNowTicks();

    /// <summary>Raised after every change of the queue's state, outside the lock (test harnesses wait on it
    /// instead of guessing from inactivity).</summary>
    internal event Action? Changed;

    private void Notify()
    {
        Changed?.Invoke();
        _context.InFlight.Signal();
    }

    /// <summary>Entries left in the lock-free inbox (for tests: a deleted queue's inbox holds only publishes that were
    /// reported as not enqueued).</summary>
    internal int InboxCount => _incoming.Count;

    /// <summary>Adds a published message. Returns false when the queue was deleted meanwhile.</summary>
    /// <remarks>
    /// Lock-free unless a consumer is waiting: the entry goes to <c>_incoming</c>; then, after a full fence, the
    /// producer reads <c>_waiting</c>. A consumer sets <c>_waiting</c> (with a full fence) before it checks
    /// <c>_incoming</c> one last time and blocks. So either the consumer sees the entry, or the producer sees the
    /// consumer and takes the lock to hand the entry over.
    /// </remarks>
    internal bool Enqueue(QueueEntry entry)
    {
        if (NeedsOffer)
        {
            var handover = new Handover(retry: true);
            byte[]? envelope = null;
            var result = Offer(entry, ref envelope, handover, deadLetterRefused: true);
            if (handover.Pending > 0 && !_context.Durable!.TrySubmit(handover.Unit))
            {
                handover.Unit.Failed!(new ObjectDisposedException(nameof(MessageBroker)));
                return false;
            }

            return result is OfferResult.Joined or OfferResult.Pending;
        }

        if (Volatile.Read(ref _deleted))
        {
            return false;
        }

        _incoming.Enqueue(entry);
        Interlocked.MemoryBarrier();
        _context.InFlight.Arrived(); // without the lock: an idle check running now must look again
        if (Volatile.Read(ref _deleted))
        {
            // Deleted meanwhile: Delete sets the flag, then drains _incoming. Seen here, the entry may or may not have been
            // drained; either way it is dropped with the queue, so it is reported as not enqueued.
            return false;
        }

        if (Volatile.Read(ref _waiting) > 0)
        {
            using (Lock())
            {
                Dispatch();
            }
        }
        else
        {
            Notify();
        }

        if (MayExpire(entry))
        {
            AfterEnqueueWithTtl(entry);
        }

        return true;
    }

    /// <summary>Adds a published message that becomes ready at <paramref name="dueTicks"/>; it then joins the tail
    /// of the queue. Returns false when the queue was deleted.</summary>
    internal bool EnqueueDelayed(QueueEntry entry, long dueTicks)
    {
        lock (_sync)
        {
            if (_deleted)
            {
                return false;
            }

            _counters.Published++;
            AddDelayed(entry, dueTicks);
        }

        Notify();
        return true;
    }

    /// <summary>Whether a message entering without a publisher (a dead letter, a redrive) must be offered under the
    /// lock (<see cref="Offer"/>): the queue has limits, or stores messages.</summary>
    internal bool NeedsOffer => _limits.IsLimited || _stored;

    /// <summary>Whether anything is ready, counting published entries not yet moved into the ready list.</summary>
    private bool HasReady => _ready.Count > 0 || !_incoming.IsEmpty;

    /// <summary>Takes the next message in queue order (caller holds the lock). Without priorities, everything in the ready list is
    /// older than everything still in <c>_incoming</c> (sequences are given on leaving it), so the ready list
    /// goes first; under load it is usually empty and entries go straight from <c>_incoming</c> to a consumer.</summary>
    private bool TryTakeNextRaw(out QueueEntry entry)
    {
        if (_prioritized)
        {
            DrainIncoming(); // a newer message may outrank everything ready
        }

        if (_ready.TryTake(out entry))
        {
            if (_limits.IsLimited)
            {
                RoomFreed();
            }

            if (_lazy)
            {
                MaybeRefill();
            }

            return true;
        }

        if (_lazy)
        {
            MaybeRefill();
        }

        while (_incoming.TryDequeue(out entry!))
        {
            if (_deleted)
            {
                continue;
            }

            entry.Sequence = ++_sequence;
            _counters.Published++;
            return true;
        }

        return false;
    }

    /// <summary>Takes the next message that has not expired; expired ones met on the way are dead-lettered.</summary>
    private bool TryTakeNext(out QueueEntry entry)
    {
        long now = 0;
        while (TryTakeNextRaw(out entry))
        {
            if (MayExpire(entry))
            {
                if (now == 0)
                {
                    now = NowForTtl;
                }

                if (IsExpired(entry, now))
                {
                    Expire(entry);
                    continue;
                }
            }

            return true;
        }

        return false;
    }

    /// <summary>Puts a message that came back (nack, ack timeout, a consumer that left, a delayed redelivery) at its
    /// place (caller holds the lock). A <see cref="OverflowPolicy.DropHead"/> queue it takes over its limit drops its
    /// head at once, as RabbitMQ does; the other policies never refuse a returned message.</summary>
    private void ReturnToReady(QueueEntry entry)
    {
        _ready.Return(entry);
        IndexExpiry(entry);

        if (_limits.IsLimited && Options.Overflow == OverflowPolicy.DropHead)
        {
            DropHeadToLimits();
        }
    }

    /// <summary>Moves published entries into the ready list, in publish order (caller holds the lock), for the
    /// operations that look at the whole queue.</summary>
    private void DrainIncoming()
    {
        while (_incoming.TryDequeue(out var entry))
        {
            if (_deleted)
            {
                continue;
            }

            entry.Sequence = ++_sequence;
            _counters.Published++;
            _ready.Append(entry);
            IndexExpiry(entry);
        }
    }

    public void OnDue(long nowTicks)
    {
        using (Lock())
        {
            _wakeAt = long.MaxValue;
            if (_deleted)
            {
                return;
            }

            List<Renumbering>? renumber = null;
            TakeDueEntries(nowTicks, ref renumber);
            TakeDueRows(nowTicks, ref renumber);
            if (renumber is not null)
            {
                RenumberDue(renumber);
            }

            SweepIfDue(nowTicks);
            var next = NextDue(nowTicks);
            Dispatch();
            DropHeadToLimits();
            WakeAt(next);
        }
    }

    /// <summary>Moves the delayed entries due by <paramref name="nowTicks"/>: a redelivery back to its place, a stored
    /// publish to renumbering (it joins the tail once its row is renumbered), any other publish to the tail if the queue
    /// has room (caller holds the lock).</summary>
    private void TakeDueEntries(long nowTicks, ref List<Renumbering>? renumber)
    {
        while (_delayed.TryTakeDue(nowTicks, out var entry))
        {
            if (entry.Sequence != 0)
            {
                entry.SetState(EntryState.Ready);
                ReturnToReady(entry);
            }
            else if (entry.StoreId > 0)
            {
                (renumber ??= []).Add(new Renumbering(entry, entry.StoreId, 0));
            }
            else
            {
                AdmitDue(entry);
            }
        }
    }

    /// <summary>Moves a lazy queue's delayed rows due by <paramref name="nowTicks"/> to renumbering, if the queue has
    /// room (caller holds the lock).</summary>
    private void TakeDueRows(long nowTicks, ref List<Renumbering>? renumber)
    {
        if (_delayedRows is not { } rows)
        {
            return;
        }

        while (rows.TryPeek(out var row, out var due) && due.Due <= nowTicks)
        {
            rows.Dequeue();
            if (AdmitDueRow(row.Id, row.Size))
            {
                (renumber ??= []).Add(new Renumbering(null, row.Id, row.Size));
            }
        }
    }

    /// <summary>When the queue must wake next: the earliest delayed entry or row, ack deadline or sweep (caller holds
    /// the lock; expires the ack deadlines already passed).</summary>
    private long NextDue(long nowTicks)
    {
        var next = _delayed.NextDue;
        if (_ackTimeoutTicks > 0)
        {
            next = Math.Min(next, ExpireAckDeadlines(nowTicks));
        }

        if (_delayedRows?.TryPeek(out _, out var nextRow) == true)
        {
            next = Math.Min(next, nextRow.Due);
        }

        return Math.Min(next, _expiries.SweepAt); // a sweep asked for while an earlier wake-up was pending
    }

    // ---- under the lock ----

    private void WakeAt(long dueTicks)
    {
        if (dueTicks < _wakeAt)
        {
            _wakeAt = dueTicks;
            _context.Scheduler.Schedule(this, dueTicks);
        }
    }
}
