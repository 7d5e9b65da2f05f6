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
    // Delayed messages and redeliveries by due time; equal due times in the order they were delayed.
    private readonly PriorityQueue<QueueEntry, (long Due, long Order)> _delayed = new();
    private long _delayOrder;
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

    private long _published;
    private long _delivered;
    private long _acked;
    private long _redelivered;
    private long _deadLettered;
    private long _dropped;

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
        _limited = options.MaxLength is not null || options.MaxLengthBytes is not null;
        _maxLength = options.MaxLength ?? int.MaxValue;
        _maxBytes = options.MaxLengthBytes ?? long.MaxValue;
        _dedupWindowTicks = options.DeduplicationWindow is { } window ? (Durations.IsInfinite(window) ? long.MaxValue : window.Ticks) : 0;
        if ((options.Durable || options.Mode == QueueMode.Lazy) && context.Durable is not null)
        {
            _stored = true;
            if (options.Mode == QueueMode.Lazy)
            {
                _lazy = true;
                _window = context.Durable.Options.LazyWindow;
                _cursor = context.Durable.LastId; // rows already stored belong to others (or are recovered: see PrepareRecovery)
            }
        }

        if (_dedupWindowTicks > 0)
        {
            _seen = new(StringComparer.Ordinal);
            _seenOrder = new();
        }
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

    /// <summary>Raised after every change of the queue's state, outside the lock (test harnesses wait on it
    /// instead of guessing from inactivity).</summary>
    internal event Action? Changed;

    private void Notify() => Changed?.Invoke();

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
        if (Volatile.Read(ref _deleted))
        {
            // Deleted meanwhile: Delete sets the flag, then drains _incoming. Seen here, the entry may or may not have been
            // drained; either way it is dropped with the queue, so it is reported as not enqueued.
            return false;
        }

        if (Volatile.Read(ref _waiting) > 0)
        {
            List<DeadLetter>? dead;
            lock (_sync)
            {
                Dispatch();
                dead = TakeDeadLetters();
            }

            SendDeadLetters(dead);
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

            _published++;
            AddDelayed(entry, dueTicks);
        }

        Notify();
        return true;
    }

    /// <summary>
    /// Called by a consumer's reader that found its window empty: hands it what is ready (within its prefetch),
    /// and when there is nothing and <paramref name="wait"/> is set, marks it waiting so that the next publish
    /// hands over directly. Returns whether the reader may block: it will be woken by what it may take next
    /// (false when the window got deliveries instead, which the reader must read before it blocks).
    /// </summary>
    internal bool RequestDeliveries(ConsumerCore consumer, bool wait)
    {
        List<DeadLetter>? dead;
        bool armed;
        lock (_sync)
        {
            Dispatch();
            armed = wait && MarkWaitingIfEmpty(consumer);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return armed;
    }

    /// <summary>Whether a message entering without a publisher (a dead letter, a redrive) must be offered under the
    /// lock (<see cref="Offer"/>): the queue has limits, or stores messages.</summary>
    internal bool NeedsOffer => _limited || _stored;

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
            if (_limited)
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
            _published++;
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

        if (_limited && Options.Overflow == OverflowPolicy.DropHead)
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
            _published++;
            _ready.Append(entry);
            IndexExpiry(entry);
        }
    }

    /// <summary>Marks a consumer waiting when its window is empty and has room (caller holds the lock). Sets the
    /// flag before the last look at <c>_incoming</c>; see <see cref="Enqueue"/>. A consumer that cannot take
    /// deliveries yet is marked to be woken when it can: when a settle frees its full window, or when it becomes the
    /// single active consumer. Returns false only when its window already holds deliveries (nothing was marked).</summary>
    private bool MarkWaitingIfEmpty(ConsumerCore consumer)
    {
        if (!consumer.Active)
        {
            return true; // stopping: its channel completes
        }

        if (!consumer.HasCapacity)
        {
            consumer.WaitWhenFreed = true; // its reader blocks on a full window: mark it when a settle makes room
            return true;
        }

        if (!IsEligible(consumer))
        {
            consumer.WaitWhenEligible = true; // a standby of a single-active-consumer queue: marked when it takes over
            return true;
        }

        if (consumer.Waiting)
        {
            return true;
        }

        if (consumer.Channel.Reader.Count > 0)
        {
            return false;
        }

        consumer.Waiting = true;
        Interlocked.Increment(ref _waiting);
        if (!_incoming.IsEmpty)
        {
            Dispatch();
        }

        return true;
    }

    private void StopWaiting(ConsumerCore consumer)
    {
        if (consumer.Waiting)
        {
            consumer.Waiting = false;
            Interlocked.Decrement(ref _waiting);
        }
    }

    internal void AddConsumer(ConsumerCore consumer)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            if (_deleted)
            {
                throw new TopologyException($"Queue '{Name}' was deleted; declare it again before consuming from it.");
            }

            if (consumer.Removed || !consumer.Active)
            {
                throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed while this consumer was being started; nothing can be consumed any more.");
            }

            _consumers.Add(consumer);
            Dispatch(); // may dead-letter messages at their delivery limit
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    /// <summary>Stops new deliveries to a consumer and returns the ones it has not taken yet (a graceful stop:
    /// deliveries in its code's hands stay with it until <see cref="RemoveConsumer"/>).</summary>
    internal void StopConsumer(ConsumerCore consumer)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            if (!consumer.Active)
            {
                return;
            }

            Deactivate(consumer);
            Dispatch();
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    /// <summary>Detaches a consumer in one step, returning every delivery it has not settled: those its code had
    /// come back Redelivered; those only prefetched come back as if never delivered.</summary>
    internal void RemoveConsumer(ConsumerCore consumer)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            if (consumer.Removed)
            {
                return;
            }

            if (consumer.Active)
            {
                Deactivate(consumer);
            }

            consumer.Removed = true;
            while (consumer.Unacked.TryDequeue(out var t))
            {
                if (t.IsLive)
                {
                    t.Entry.SetState(EntryState.Ready);
                    ReturnToReady(t.Entry);
                }
            }

            consumer.InFlight = 0;
            if (_consumers.Remove(consumer) && _roundRobin >= _consumers.Count)
            {
                _roundRobin = 0;
            }

            Dispatch();
            if (Options.SingleActiveConsumer && _consumers.Count > 0 && _consumers[0] is { WaitWhenEligible: true } next)
            {
                // The next consumer takes the queue over: a reader of it that waited as a standby is now woken by publishes.
                next.WaitWhenEligible = false;
                MarkWaitingIfEmpty(next);
            }

            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    private void Deactivate(ConsumerCore consumer)
    {
        consumer.Active = false;
        StopWaiting(consumer);
        ReturnUnclaimed(consumer);
        Trim(consumer);
        consumer.Channel.Writer.TryComplete();
    }

    /// <summary>Returns the deliveries waiting in a consumer's window, never seen by its code, as if they had not been
    /// delivered (caller holds the lock); the handoffs left in the window are stale and skipped when read.</summary>
    private void ReturnUnclaimed(ConsumerCore consumer)
    {
        foreach (var t in consumer.Unacked)
        {
            if (t.Entry.TryTransition(t.Tag, EntryState.Buffered, EntryState.Ready))
            {
                UncountDelivery(t.Entry);
                t.Entry.DeliveryCount--;
                consumer.InFlight--;
                ReturnToReady(t.Entry);
            }
        }
    }

    /// <summary>Moves a buffered delivery into the consumer's hands; false when it was returned meanwhile.
    /// Lock-free: one compare-and-swap on the entry's packed tag and state. With an ack timeout, the time it is
    /// taken is recorded first: the timeout counts from here, not from when it entered the prefetch window.</summary>
    internal bool TryClaim(in Handoff handoff)
    {
        if (!handoff.Entry.TryTransition(handoff.Tag, EntryState.Buffered, EntryState.InHand))
        {
            return false; // a stale hand-over (returned meanwhile) touches nothing of the entry's later deliveries
        }

        if (_ackTimeoutTicks > 0)
        {
            // Only the claim that won writes the time; until it does, the deadline reads as "just taken" (see
            // Deliver and ExpireAckDeadlines).
            Volatile.Write(ref ((ExtendedEntry)handoff.Entry).ClaimedAt, _context.Scheduler.NowTicks);
        }

        return true;
    }

    /// <summary>The claim time of a delivery whose claim has not written it yet (it was taken a moment ago).</summary>
    private const long NotClaimedYet = long.MinValue;

    /// <summary>Dead-letters a claimed delivery that its consumer's code never saw (its body is not of the type the
    /// consumer reads): not counted as delivered.</summary>
    internal void RejectUnseen(ConsumerCore consumer, QueueEntry entry, int tag, string reason)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            if (CheckSettle(consumer, entry, tag) != SettleResult.Ok)
            {
                return;
            }

            UncountDelivery(entry);
            Kill(entry, DeathRecord.Rejected, reason, exception: null);
            Settled(consumer);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    internal SettleResult Ack(ConsumerCore consumer, QueueEntry entry, int tag)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }

            entry.SetState(EntryState.Gone);
            _acked++;
            ForgetStored(entry);
            Settled(consumer); // refills, which may dead-letter messages at their delivery limit
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return SettleResult.Ok;
    }

    /// <summary>
    /// Acks several deliveries of one consumer under one lock (a subscription's batch of handlers that finished
    /// synchronously), then, when <paramref name="refill"/> has room and the consumer's window channel is empty,
    /// delivers the next ready messages straight into <paramref name="refill"/> instead of through the channel
    /// (only for a consumer with one reader: siblings could not see them). With <paramref name="wait"/>, the
    /// caller is about to block: the window is filled, or the consumer marked waiting. Deliveries settled
    /// meanwhile by other means are skipped. Returns how many were refilled.
    /// </summary>
    internal int AckAndRefill(ConsumerCore consumer, ReadOnlySpan<Handoff> acks, Span<Handoff> refill, bool wait)
    {
        var refilled = 0;
        List<DeadLetter>? dead = null;
        lock (_sync)
        {
            var settled = 0;
            foreach (var d in acks)
            {
                if (CheckSettle(consumer, d.Entry, d.Tag) == SettleResult.Ok)
                {
                    d.Entry.SetState(EntryState.Gone);
                    ForgetStored(d.Entry);
                    settled++;
                }
            }

            _acked += settled;
            Release(consumer, settled);

            // Taking from the ready list directly keeps queue order only while nothing older waits in the channel;
            // under this lock nobody else can write to this consumer's channel.
            if (refill.Length > 0 && HasReady && consumer.Channel.Reader.Count == 0 && IsEligible(consumer))
            {
                while (refilled < refill.Length && consumer.InFlight < consumer.Prefetch && TryTakeNext(out var entry))
                {
                    if (entry.DeliveryCount >= _maxDeliveries)
                    {
                        Kill(entry, DeathRecord.DeliveryLimit, detail: null, exception: null);
                        continue;
                    }

                    refill[refilled++] = Deliver(consumer, entry, writeToChannel: false);
                }
            }
            else if (wait || (HasReady && consumer.InFlight <= consumer.Prefetch / 2))
            {
                Dispatch();
            }

            if (wait && refilled == 0)
            {
                MarkWaitingIfEmpty(consumer);
            }

            dead = TakeDeadLetters();
        }

        if (dead is not null)
        {
            SendDeadLetters(dead);
        }
        else if (acks.Length > 0)
        {
            Notify();
        }

        return refilled;
    }

    private bool IsEligible(ConsumerCore consumer)
    {
        if (!consumer.Active)
        {
            return false;
        }

        return !Options.SingleActiveConsumer || (_consumers.Count > 0 && ReferenceEquals(_consumers[0], consumer));
    }

    /// <summary>Settles a delivery of an auto-ack consumer the moment it is claimed.</summary>
    internal void AutoAck(ConsumerCore consumer, QueueEntry entry, int tag)
    {
        List<DeadLetter>? dead = null;
        lock (_sync)
        {
            if (entry.TryTransition(tag, EntryState.InHand, EntryState.Gone))
            {
                _acked++;
                ForgetStored(entry);
                Settled(consumer); // refills, which may dead-letter messages at their delivery limit
                dead = TakeDeadLetters();
            }
        }

        SendDeadLetters(dead);
    }

    internal SettleResult Nack(ConsumerCore consumer, QueueEntry entry, int tag, bool requeue, TimeSpan? delay)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }
            if (!requeue)
            {
                Kill(entry, DeathRecord.Rejected, detail: null, exception: null);
            }
            else
            {
                var wait = delay ?? (Options.Redelivery.MaxRetries > 0 ? Options.Redelivery.GetDelay(entry.DeliveryCount) : TimeSpan.Zero);
                Requeue(entry, wait);
            }

            Settled(consumer);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return SettleResult.Ok;
    }

    internal SettleResult Reject(ConsumerCore consumer, QueueEntry entry, int tag, string? reason, Exception? exception)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }
            Kill(entry, DeathRecord.Rejected, reason, exception);
            Settled(consumer);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return SettleResult.Ok;
    }

    /// <summary>Counts a retry that a consumer makes in place, keeping the delivery in hand (an ordered
    /// subscription's retry): a new delivery of the same message to the same consumer. False when the delivery is
    /// no longer the consumer's, or when the delivery limit is reached (then the message is dead-lettered).</summary>
    internal bool RedeliverInPlace(ConsumerCore consumer, QueueEntry entry, int tag, out int deliveryCount)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            deliveryCount = entry.DeliveryCount;
            if (CheckSettle(consumer, entry, tag) != SettleResult.Ok)
            {
                return false;
            }

            if (entry.DeliveryCount < _maxDeliveries)
            {
                deliveryCount = ++entry.DeliveryCount;
                _delivered++;
                _redelivered++;
                RecordDelivery(entry, deliveryCount);
                if (_ackTimeoutTicks > 0)
                {
                    Volatile.Write(ref ((ExtendedEntry)entry).ClaimedAt, _context.Scheduler.NowTicks); // a new delivery: its ack timeout starts again
                }

                return true;
            }
            Kill(entry, DeathRecord.DeliveryLimit, detail: null, exception: null);
            Settled(consumer);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return false;
    }

    public void OnDue(long nowTicks)
    {
        List<DeadLetter>? dead;
        lock (_sync)
        {
            _wakeAt = long.MaxValue;
            if (_deleted)
            {
                return;
            }

            List<Renumbering>? renumber = null;
            while (_delayed.TryPeek(out var entry, out var due) && due.Due <= nowTicks)
            {
                _delayed.Dequeue();
                if (entry.Sequence != 0)
                {
                    entry.SetState(EntryState.Ready);
                    ReturnToReady(entry); // a delayed redelivery goes back to its place
                }
                else if (entry.StoreId > 0)
                {
                    (renumber ??= []).Add(new Renumbering(entry, entry.StoreId, 0)); // joins the tail once its row is renumbered
                }
                else
                {
                    AdmitDue(entry); // a delayed publish joins the tail, if the queue has room
                }
            }

            if (_delayedRows is { } rows)
            {
                while (rows.TryPeek(out var row, out var due) && due.Due <= nowTicks)
                {
                    rows.Dequeue();
                    if (AdmitDueRow(row.Id, row.Size))
                    {
                        (renumber ??= []).Add(new Renumbering(null, row.Id, row.Size));
                    }
                }
            }

            if (renumber is not null)
            {
                RenumberDue(renumber);
            }

            SweepIfDue(nowTicks);
            var next = _delayed.TryPeek(out _, out var nextDelayed) ? nextDelayed.Due : long.MaxValue;
            if (_ackTimeoutTicks > 0)
            {
                next = Math.Min(next, ExpireAckDeadlines(nowTicks));
            }

            if (_delayedRows?.TryPeek(out _, out var nextRow) == true)
            {
                next = Math.Min(next, nextRow.Due);
            }

            next = Math.Min(next, _sweepAt); // a sweep asked for while an earlier wake-up was pending

            Dispatch();
            DropHeadToLimits();
            WakeAt(next);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    // ---- under the lock ----

    /// <summary>Whether <paramref name="consumer"/> may settle delivery <paramref name="tag"/> of the entry, and if
    /// not, why (caller holds the lock).</summary>
    private SettleResult CheckSettle(ConsumerCore consumer, QueueEntry entry, int tag)
    {
        var handle = entry.Handle;
        if (handle == QueueEntry.Pack(tag, EntryState.InHand) && !consumer.Removed)
        {
            return SettleResult.Ok;
        }

        if (handle == QueueEntry.Pack(tag, EntryState.Gone))
        {
            return SettleResult.AlreadySettled; // acked or rejected, nothing since
        }

        if (entry is ExtendedEntry { TimedOutTag: var timedOut } && timedOut == tag)
        {
            return SettleResult.TimedOut;
        }

        if (_deleted)
        {
            return SettleResult.QueueDeleted;
        }

        // A delivery in hand ends by a settle, its ack timeout, its consumer leaving or its queue's deletion; the
        // last three are ruled out.
        return consumer.Removed ? SettleResult.ConsumerGone : SettleResult.AlreadySettled;
    }

    /// <summary>Undoes the counters of a delivery that never reached the consumer's code (caller holds the lock).</summary>
    private void UncountDelivery(QueueEntry entry)
    {
        _delivered--;
        if (entry.DeliveryCount > 1)
        {
            _redelivered--;
        }
    }

    /// <summary>Frees <paramref name="count"/> places in a consumer's window (caller holds the lock). A reader that
    /// blocked on the full window is now fed, or marked waiting so that the next publish reaches it.</summary>
    private void Release(ConsumerCore consumer, int count)
    {
        consumer.InFlight -= count;
        Trim(consumer);
        if (consumer.WaitWhenFreed && consumer.HasCapacity)
        {
            consumer.WaitWhenFreed = false;
            if (HasReady)
            {
                Dispatch();
            }

            MarkWaitingIfEmpty(consumer);
        }
    }

    private void Settled(ConsumerCore consumer)
    {
        Release(consumer, 1);
        // Refill in batches: wait until half the window is free, so one lock hands over many messages.
        if (HasReady && consumer.InFlight <= consumer.Prefetch / 2)
        {
            Dispatch();
        }
    }

    private static void Trim(ConsumerCore consumer)
    {
        var unacked = consumer.Unacked;
        while (unacked.TryPeek(out var head) && !head.IsLive)
        {
            unacked.Dequeue();
        }

        if (unacked.Count > (2 * Math.Max(consumer.InFlight, 0)) + 64)
        {
            var live = unacked.Where(t => t.IsLive).ToArray();
            unacked.Clear();
            foreach (var t in live)
            {
                unacked.Enqueue(t);
            }
        }
    }

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
            _delayed.Enqueue(entry, (due, ++_delayOrder));
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
        return dead;
    }

    /// <summary>Sends dead letters taken under the lock on, once it is released (they enter other queues, whose
    /// locks must not nest in this one). Their rows here are deleted with their rows in their targets.</summary>
    private void SendDeadLetters(List<DeadLetter>? dead)
    {
        if (dead is not null)
        {
            _context.DeadLetters.Send(this, dead);
        }

        Notify();
    }

    internal void CountDeadLettered(bool routed)
    {
        if (routed)
        {
            Interlocked.Increment(ref _deadLettered);
        }
        else
        {
            Interlocked.Increment(ref _dropped);
        }

        Notify();
    }

    private bool TryPickConsumer(out ConsumerCore consumer)
    {
        var consumers = _consumers;
        var count = consumers.Count;
        if (Options.SingleActiveConsumer)
        {
            // The first registered consumer owns the queue until it has fully left (a stopping one keeps it, so
            // its returned messages are redelivered in order to the next).
            consumer = count > 0 ? consumers[0] : null!;
            return count > 0 && consumer.HasCapacity;
        }

        for (var i = 0; i < count; i++)
        {
            var index = _roundRobin + i;
            if (index >= count)
            {
                index -= count;
            }

            var c = consumers[index];
            if (c.HasCapacity)
            {
                _roundRobin = index + 1 == count ? 0 : index + 1;
                consumer = c;
                return true;
            }
        }

        consumer = null!;
        return false;
    }

    private void Dispatch()
    {
        while (HasReady && TryPickConsumer(out var consumer))
        {
            if (!TryTakeNext(out var entry))
            {
                break;
            }

            if (entry.DeliveryCount >= _maxDeliveries)
            {
                Kill(entry, DeathRecord.DeliveryLimit, detail: null, exception: null);
                continue;
            }

            Deliver(consumer, entry);
        }
    }

    private Handoff Deliver(ConsumerCore consumer, QueueEntry entry, bool writeToChannel = true)
    {
        var tag = entry.BeginDelivery();
        var count = ++entry.DeliveryCount;
        consumer.InFlight++;
        _delivered++;
        if (count > 1)
        {
            _redelivered++;
        }

        if (_ackTimeoutTicks > 0)
        {
            Volatile.Write(ref ((ExtendedEntry)entry).ClaimedAt, NotClaimedYet); // written by the claim that takes this delivery
            // Looks again one timeout from now: by then the delivery was taken (and its deadline is known) or not.
            WakeAt(Durations.After(_context.Scheduler.NowTicks, _ackTimeoutTicks));
        }

        consumer.Unacked.Enqueue(new Tracked(entry, tag));

        var handoff = new Handoff(entry, tag, count);
        if (writeToChannel)
        {
            StopWaiting(consumer);
            consumer.Channel.Writer.TryWrite(handoff);
        }

        return handoff;
    }

    /// <summary>Returns deliveries whose ack deadline passed; gives the next time to look again. The timeout counts
    /// from when the consumer's code took a delivery (<see cref="ExtendedEntry.ClaimedAt"/>); deliveries still in a
    /// prefetch window are not timed, but are looked at again one timeout later, by when any claimed since has its
    /// deadline in view. A consumer that lost a delivery to its timeout also gets back what waits in its window, so
    /// those are redelivered behind it, in queue order, not ahead of it.</summary>
    private long ExpireAckDeadlines(long nowTicks)
    {
        var next = long.MaxValue;
        foreach (var consumer in _consumers.ToArray())
        {
            var expired = false;
            foreach (var t in consumer.Unacked)
            {
                var entry = t.Entry;
                var handle = entry.Handle;
                if (handle == QueueEntry.Pack(t.Tag, EntryState.Buffered))
                {
                    next = Math.Min(next, Durations.After(nowTicks, _ackTimeoutTicks));
                    continue;
                }

                if (handle != QueueEntry.Pack(t.Tag, EntryState.InHand))
                {
                    continue;
                }

                var claimedAt = Volatile.Read(ref ((ExtendedEntry)entry).ClaimedAt);
                var deadline = Durations.After(claimedAt == NotClaimedYet ? nowTicks : claimedAt, _ackTimeoutTicks);
                if (deadline > nowTicks)
                {
                    next = Math.Min(next, deadline);
                    continue;
                }

                if (entry.TryTransition(t.Tag, EntryState.InHand, EntryState.Ready))
                {
                    ((ExtendedEntry)entry).TimedOutTag = t.Tag;
                    Requeue(entry, TimeSpan.Zero);
                    consumer.InFlight--;
                    expired = true;
                }
            }

            if (expired)
            {
                ReturnUnclaimed(consumer);
            }

            Release(consumer, 0); // trims, and feeds a reader that blocked on the full window
        }

        return next;
    }

    private void WakeAt(long dueTicks)
    {
        if (dueTicks < _wakeAt)
        {
            _wakeAt = dueTicks;
            _context.Scheduler.Schedule(this, dueTicks);
        }
    }
}
