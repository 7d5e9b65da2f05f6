using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Dispatch: handing ready messages to consumers with room in their windows, round-robin (or to the single active one).</summary>
internal sealed partial class BrokerQueue
{
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
        _counters.Delivered++;
        if (count > 1)
        {
            _counters.Redelivered++;
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
}
