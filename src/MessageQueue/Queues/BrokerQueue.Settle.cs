using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Settling deliveries: claims, acks (single and batched with a refill), nacks, rejects, in-place retries, and why a settle fails.</summary>
internal sealed partial class BrokerQueue
{
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
        using (Lock())
        {
            if (CheckSettle(consumer, entry, tag) != SettleResult.Ok)
            {
                return;
            }

            UncountDelivery(entry);
            Kill(entry, DeathRecord.Rejected, reason, exception: null);
            Settled(consumer);
        }
    }

    internal SettleResult Ack(ConsumerCore consumer, QueueEntry entry, int tag)
    {
        using (Lock())
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }

            entry.SetState(EntryState.Gone);
            _counters.Acked++;
            _context.Observer?.Acked(Name, entry);
            ForgetStored(entry);
            Settled(consumer); // refills, which may dead-letter messages at their delivery limit
            return SettleResult.Ok;
        }
    }

    /// <summary>
    /// Acks several deliveries of one consumer under one lock (a subscription's batch of handlers that finished
    /// synchronously), then, when <paramref name="refill"/> has room and the consumer's window channel is empty,
    /// delivers the next ready messages straight into <paramref name="refill"/> instead of through the channel
    /// (only for a consumer with one reader: siblings could not see them). With <paramref name="wait"/>, the
    /// caller is about to block: the window is filled, or the consumer marked waiting. Deliveries settled
    /// meanwhile by other means are skipped. Returns how many were refilled.
    /// </summary>
    /// <remarks>Not a <see cref="Lock"/> scope: with no dead letters, watchers are notified only when something was
    /// acked (a worker's empty refill is not a change), which keeps an idle worker's polls quiet.</remarks>
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
                    _context.Observer?.Acked(Name, d.Entry);
                    settled++;
                }
            }

            _counters.Acked += settled;
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

    /// <summary>Settles a delivery of an auto-ack consumer the moment it is claimed.</summary>
    internal void AutoAck(ConsumerCore consumer, QueueEntry entry, int tag)
    {
        using (Lock())
        {
            if (entry.TryTransition(tag, EntryState.InHand, EntryState.Gone))
            {
                _counters.Acked++;
                _context.Observer?.Acked(Name, entry);
                ForgetStored(entry);
                Settled(consumer); // refills, which may dead-letter messages at their delivery limit
            }
        }
    }

    internal SettleResult Nack(ConsumerCore consumer, QueueEntry entry, int tag, bool requeue, TimeSpan? delay)
    {
        using (Lock())
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }

            _counters.Nacked++;
            if (!requeue)
            {
                Kill(entry, DeathRecord.Rejected, detail: null, exception: null);
            }
            else
            {
                var wait = delay ?? (Options.Redelivery.MaxRetries > 0 ? Options.Redelivery.GetDelay(entry.DeliveryCount) : TimeSpan.Zero);
                if (entry.DeliveryCount < _maxDeliveries)
                {
                    _context.Observer?.Requeued(Name, entry, wait); // at the limit, Requeue dead-letters it instead
                }

                Requeue(entry, wait);
            }

            Settled(consumer);
        }
        return SettleResult.Ok;
    }

    internal SettleResult Reject(ConsumerCore consumer, QueueEntry entry, int tag, string? reason, Exception? exception)
    {
        using (Lock())
        {
            var check = CheckSettle(consumer, entry, tag);
            if (check != SettleResult.Ok)
            {
                return check;
            }

            _counters.Nacked++;
            Kill(entry, DeathRecord.Rejected, reason, exception);
            Settled(consumer);
        }
        return SettleResult.Ok;
    }

    /// <summary>Counts a retry that a consumer makes in place, keeping the delivery in hand (an ordered
    /// subscription's retry): a new delivery of the same message to the same consumer. False when the delivery is
    /// no longer the consumer's, or when the delivery limit is reached (then the message is dead-lettered).</summary>
    internal bool RedeliverInPlace(ConsumerCore consumer, QueueEntry entry, int tag, out int deliveryCount)
    {
        using (Lock())
        {
            deliveryCount = entry.DeliveryCount;
            if (CheckSettle(consumer, entry, tag) != SettleResult.Ok)
            {
                return false;
            }

            _counters.Nacked++; // the failed attempt, as a nack for a retry counts it
            if (entry.DeliveryCount < _maxDeliveries)
            {
                deliveryCount = ++entry.DeliveryCount;
                _counters.Delivered++;
                _counters.Redelivered++;
                RecordDelivery(entry, deliveryCount);
                _context.Observer?.Delivered(Name, entry, deliveryCount);
                if (_ackTimeoutTicks > 0)
                {
                    Volatile.Write(ref ((ExtendedEntry)entry).ClaimedAt, _context.Scheduler.NowTicks); // a new delivery: its ack timeout starts again
                }

                return true;
            }
            Kill(entry, DeathRecord.DeliveryLimit, detail: null, exception: null);
            Settled(consumer);
        }
        return false;
    }

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
        _counters.Delivered--;
        if (entry.DeliveryCount > 1)
        {
            _counters.Redelivered--;
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
}
