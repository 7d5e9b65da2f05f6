using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Ack timeouts: deliveries in the consumer's hands for longer than the queue's AckTimeout go back.</summary>
internal sealed partial class BrokerQueue
{
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

                if (entry.TryReturn(t.Tag))
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
}
