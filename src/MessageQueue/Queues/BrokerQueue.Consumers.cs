using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Consumers: joining and leaving the queue, waiting for deliveries, and who is eligible (single active consumer).</summary>
internal sealed partial class BrokerQueue
{
    /// <summary>
    /// Called by a consumer's reader that found its window empty: hands it what is ready (within its prefetch),
    /// and when there is nothing and <paramref name="wait"/> is set, marks it waiting so that the next publish
    /// hands over directly. Returns whether the reader may block: it will be woken by what it may take next
    /// (false when the window got deliveries instead, which the reader must read before it blocks).
    /// </summary>
    internal bool RequestDeliveries(ConsumerCore consumer, bool wait)
    {
        using (Lock())
        {
            Dispatch();
            return wait && MarkWaitingIfEmpty(consumer);
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
        using (Lock())
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
        }
    }

    /// <summary>Stops new deliveries to a consumer and returns the ones it has not taken yet (a graceful stop:
    /// deliveries in its code's hands stay with it until <see cref="RemoveConsumer"/>).</summary>
    internal void StopConsumer(ConsumerCore consumer)
    {
        using (Lock())
        {
            if (!consumer.Active)
            {
                return;
            }

            Deactivate(consumer);
            Dispatch();
        }
    }

    /// <summary>Detaches a consumer in one step, returning every delivery it has not settled: those its code had
    /// come back Redelivered; those only prefetched come back as if never delivered.</summary>
    internal void RemoveConsumer(ConsumerCore consumer)
    {
        using (Lock())
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
                if (t.Entry.TryReturn(t.Tag)) // in its code's hands (the unclaimed ones went back when it stopped)
                {
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
        }
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

    private bool IsEligible(ConsumerCore consumer)
    {
        if (!consumer.Active)
        {
            return false;
        }

        return !Options.SingleActiveConsumer || (_consumers.Count > 0 && ReferenceEquals(_consumers[0], consumer));
    }
}
