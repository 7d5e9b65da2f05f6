using System.Threading.Channels;
using MessageQueue.Queues;

namespace MessageQueue.Consuming;

/// <summary>
/// The queue's side of one consumer: its prefetch window (a channel the queue writes deliveries into) and
/// the deliveries it has not settled yet. Everything but the channel reader is guarded by the queue lock.
/// </summary>
internal sealed class ConsumerCore
{
    internal ConsumerCore(BrokerQueue queue, int prefetch, bool autoAck)
    {
        Queue = queue;
        Prefetch = prefetch;
        AutoAck = autoAck;
        Channel = System.Threading.Channels.Channel.CreateUnbounded<Handoff>(new UnboundedChannelOptions
        {
            // Multi-reader even for one worker: the queue needs Reader.Count to refill a worker directly.
            SingleReader = false,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
    }

    internal BrokerQueue Queue { get; }

    internal int Prefetch { get; }

    internal bool AutoAck { get; }

    internal Channel<Handoff> Channel { get; }

    /// <summary>Deliveries written to this consumer and not settled (guarded by the queue lock).</summary>
    internal int InFlight;

    /// <summary>Whether the queue may write new deliveries (guarded by the queue lock).</summary>
    internal bool Active = true;

    /// <summary>Whether a reader of this consumer waits on its empty window (guarded by the queue lock).</summary>
    internal bool Waiting;

    /// <summary>Whether the consumer has left the queue (guarded by the queue lock).</summary>
    internal bool Removed;

    /// <summary>The deliveries handed to this consumer, oldest first; settled ones are trimmed lazily
    /// (guarded by the queue lock).</summary>
    internal readonly Queue<Tracked> Unacked = new();

    internal bool HasCapacity => Active && InFlight < Prefetch;
}

/// <summary>A delivery written into a consumer's window.</summary>
internal readonly record struct Handoff(QueueEntry Entry, int Tag, int DeliveryCount);

/// <summary>A delivery the consumer has not settled yet, and when it was made.</summary>
internal readonly record struct Tracked(QueueEntry Entry, int Tag, long DeliveredAt)
{
    internal bool IsLive
    {
        get
        {
            var h = Entry.Handle;
            return h == QueueEntry.Pack(Tag, EntryState.Buffered) || h == QueueEntry.Pack(Tag, EntryState.InHand);
        }
    }
}

/// <summary>The outcome of an ack, nack or reject.</summary>
internal enum SettleResult
{
    Ok,
    AlreadySettled,
    Returned,
    ConsumerGone,
}
