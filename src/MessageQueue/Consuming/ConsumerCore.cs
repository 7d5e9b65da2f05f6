using System.Threading.Channels;
using MessageQueue.Queues;

namespace MessageQueue.Consuming;

/// <summary>
/// The queue's side of one consumer: its prefetch window (a channel the queue writes deliveries into) and
/// the deliveries it has not settled yet. Everything but the channel reader is guarded by the queue lock.
/// </summary>
internal sealed class ConsumerCore : IDeliverySource
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

    /// <summary>Whether a reader asked to wait while the window was full, so the consumer is to be marked waiting
    /// once a settle frees a place (guarded by the queue lock).</summary>
    internal bool WaitWhenFreed;

    /// <summary>Whether a reader asked to wait while another consumer held a single-active-consumer queue, so the
    /// consumer is to be marked waiting once it takes over (guarded by the queue lock).</summary>
    internal bool WaitWhenEligible;

    /// <summary>Whether the consumer has left the queue (guarded by the queue lock).</summary>
    internal bool Removed;

    /// <summary>The deliveries handed to this consumer, oldest first; settled ones are trimmed lazily
    /// (guarded by the queue lock).</summary>
    internal readonly Queue<Tracked> Unacked = new();

    internal bool HasCapacity => Active && InFlight < Prefetch;

    /// <summary>Deliveries in an ordered subscription's in-place retry, with when the retry is due: unacked, but not
    /// work until due (see <see cref="InFlight"/>).</summary>
    internal System.Collections.Concurrent.ConcurrentDictionary<QueueEntry, long> RetryWaits =>
        LazyInitializer.EnsureInitialized(ref _retryWaits, static () => new(ReferenceEqualityComparer.Instance));

    /// <summary>Whether an ordered in-place retry waits (read by the idle check; allocates nothing for other consumers).</summary>
    internal bool HasRetryWaits => Volatile.Read(ref _retryWaits) is { IsEmpty: false };

    private System.Collections.Concurrent.ConcurrentDictionary<QueueEntry, long>? _retryWaits;

    // ---- IDeliverySource: what a Delivery<T> of this consumer reaches (the message handle is the queue entry) ----
    string IDeliverySource.Queue => Queue.Name;

    bool IDeliverySource.AutoAck => AutoAck;

    TimeSpan? IDeliverySource.AckTimeout => Queue.Options.AckTimeout;

    object IDeliverySource.Body(object message) => ((QueueEntry)message).Body;

    MessageProperties IDeliverySource.Properties(object message) => ((QueueEntry)message).GetProperties();

    string IDeliverySource.Exchange(object message) => ((QueueEntry)message).Exchange;

    string IDeliverySource.RoutingKey(object message) => ((QueueEntry)message).RoutingKey;

    SettleResult IDeliverySource.Ack(object message, int tag) => Queue.Ack(this, (QueueEntry)message, tag);

    SettleResult IDeliverySource.Nack(object message, int tag, bool requeue, TimeSpan? delay) => Queue.Nack(this, (QueueEntry)message, tag, requeue, delay);

    SettleResult IDeliverySource.Reject(object message, int tag, string? reason, Exception? exception) => Queue.Reject(this, (QueueEntry)message, tag, reason, exception);

    /// <summary>
    /// Takes a delivery out of the window for this consumer's code: claims it (false when it was returned to
    /// the queue meanwhile), dead-letters it instead when it expired in the window, or when its body is not a
    /// <typeparamref name="T"/>. True when the code may have it.
    /// </summary>
    internal bool TryClaim<T>(in Handoff handoff)
    {
        if (!Queue.TryClaim(handoff) || !Queue.ClaimIsFresh(this, handoff))
        {
            return false;
        }

        var entry = handoff.Entry;
        if (entry.Body is not T)
        {
            Queue.RejectUnseen(this, entry, handoff.Tag, TypeMismatch.Describe(entry.Body, typeof(T)));
            return false;
        }

        if (entry.StoreId > 0)
        {
            Queue.RecordDelivery(entry, handoff.DeliveryCount); // the store counts what code saw
        }

        Queue.Observer?.Delivered(Queue.Name, entry, handoff.DeliveryCount);
        Queue.Metrics.RecordDelivery(Queue, entry.TimestampTicks);
        return true;
    }
}

/// <summary>The reason given when a message is not of the type its consumer reads.</summary>
internal static class TypeMismatch
{
    internal static string Describe(object body, Type expected) =>
        $"The message body is a '{body.GetType().FullName}', which is not a '{expected.FullName}' as the consumer expects; it was dead-lettered instead of delivered.";
}

/// <summary>A delivery written into a consumer's window.</summary>
internal readonly record struct Handoff(QueueEntry Entry, int Tag, int DeliveryCount);

/// <summary>A delivery the consumer has not settled yet.</summary>
internal readonly record struct Tracked(QueueEntry Entry, int Tag)
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
    /// <summary>Settled now.</summary>
    Ok,

    /// <summary>This delivery was acked, nacked or rejected before.</summary>
    AlreadySettled,

    /// <summary>Its ack timeout passed; the message went back to the queue.</summary>
    TimedOut,

    /// <summary>The consumer left the queue; the message went back to it.</summary>
    ConsumerGone,

    /// <summary>The queue was deleted.</summary>
    QueueDeleted,

}
