namespace MessageQueue;

/// <summary>Options of a push subscription (a handler the broker calls).</summary>
public class SubscriptionOptions
{
    /// <summary>Gets or sets how many messages the handler processes at the same time.</summary>
    /// <value>The default value is 1.</value>
    public int Concurrency { get; set; } = 1;

    /// <summary>Gets or sets how many deliveries the subscription may hold unsettled; raised to
    /// <see cref="Concurrency"/> when lower.</summary>
    /// <value>The default value is 32.</value>
    public int Prefetch { get; set; } = 32;

    /// <summary>Gets or sets what happens when the handler throws: retried after the policy's wait (a delayed
    /// redelivery in the queue), then dead-lettered with the exception in the <c>x-exception-*</c> headers.
    /// Retries count deliveries: the n-th delivery that fails is retry n. With an ordering key, a retry waits in
    /// place instead (see <see cref="SubscriptionOptions{T}.OrderingKey"/>).</summary>
    /// <value>The default value is <see cref="RetryPolicy.None"/>: the first failure dead-letters.</value>
    public RetryPolicy Retry { get; set; } = RetryPolicy.None;
}

/// <summary>Options of a push subscription for messages of type <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The message type.</typeparam>
public sealed class SubscriptionOptions<T> : SubscriptionOptions
{
    /// <summary>
    /// Gets or sets the function that gives a delivery its ordering key. Messages with the same key are handled
    /// one at a time, in queue order, while different keys run in parallel up to
    /// <see cref="SubscriptionOptions.Concurrency"/>. A null key means the message is not ordered.
    /// </summary>
    /// <remarks>
    /// A failed message of a key blocks the later messages of that key until it is acked or dead-lettered: its
    /// retries (by <see cref="SubscriptionOptions.Retry"/>) wait in place, held by this subscription, instead of
    /// going back to the queue where a later message of the key could overtake them. Each retry is a redelivery
    /// (<see cref="Delivery{T}.DeliveryCount"/> grows, <see cref="Delivery{T}.Redelivered"/> is true,
    /// <see cref="QueueOptions.MaxDeliveryCount"/> applies). Keep <see cref="QueueOptions.AckTimeout"/> longer than
    /// the retry waits. Order holds within one subscription; to keep it across several, give the queue
    /// <see cref="QueueOptions.SingleActiveConsumer"/>. A function that throws dead-letters the message with the exception.
    /// </remarks>
    /// <value>The default value is <see langword="null"/>: no ordering beyond the queue's.</value>
    public Func<Delivery<T>, string?>? OrderingKey { get; set; }
}
