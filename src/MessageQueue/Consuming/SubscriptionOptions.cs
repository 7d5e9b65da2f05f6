namespace MessageQueue;

/// <summary>Options of a push subscription (a handler the broker calls).</summary>
public sealed class SubscriptionOptions
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
    /// Retries count deliveries: the n-th delivery that fails is retry n.</summary>
    /// <value>The default value is <see cref="RetryPolicy.None"/>: the first failure dead-letters.</value>
    public RetryPolicy Retry { get; set; } = RetryPolicy.None;
}
