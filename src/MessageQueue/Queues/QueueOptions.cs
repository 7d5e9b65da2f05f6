namespace MessageQueue;

/// <summary>
/// Options of a queue. Each behaves as the RabbitMQ queue argument of the same meaning.
/// </summary>
public sealed class QueueOptions
{
    /// <summary>Gets or sets the exchange that receives this queue's dead letters.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? DeadLetterExchange { get; set; }

    /// <summary>Gets or sets the routing key dead letters are published with.</summary>
    /// <value>The default value is <see langword="null"/>: the message's own routing key.</value>
    public string? DeadLetterRoutingKey { get; set; }

    /// <summary>Gets or sets the queue that receives this queue's dead letters, through the default exchange.
    /// A shortcut for <see cref="DeadLetterExchange"/> = <c>""</c> and <see cref="DeadLetterRoutingKey"/> = the queue name;
    /// set one or the other, not both.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? DeadLetterQueue { get; set; }

    /// <summary>Gets or sets how many times a message may be delivered. A message that was delivered that many
    /// times and comes back (nack, ack timeout, a failed handler) is dead-lettered with reason <c>delivery_limit</c>.</summary>
    /// <value>The default value is <see langword="null"/>: no limit.</value>
    public int? MaxDeliveryCount { get; set; }

    /// <summary>Gets or sets how long a consumer may hold a delivery without settling it. When it passes, the
    /// message returns to the queue (<c>Redelivered = true</c>) and the consumer's late ack fails.</summary>
    /// <value>The default value is <see langword="null"/>: no limit.</value>
    public TimeSpan? AckTimeout { get; set; }

    /// <summary>Gets or sets the waits before redelivering a message that was nacked with <c>requeue</c> and no
    /// explicit delay; the n-th redelivery waits <c>Redelivery.GetDelay(n)</c>.</summary>
    /// <value>The default value is <see cref="RetryPolicy.None"/>: redeliver at once.</value>
    public RetryPolicy Redelivery { get; set; } = RetryPolicy.None;

    /// <summary>Gets or sets whether only one consumer receives at a time; when it goes, the next registered
    /// consumer takes over.</summary>
    /// <value>The default value is <see langword="false"/>: consumers share the queue round-robin.</value>
    public bool SingleActiveConsumer { get; set; }

    /// <summary>Gets or sets the highest priority the queue distinguishes (1-255). Higher-priority messages are
    /// delivered first, FIFO within a priority; a message's priority above this counts as this. A requeued message
    /// keeps its place within its priority.</summary>
    /// <value>The default value is <see langword="null"/>: priorities are ignored and the queue is plain FIFO.</value>
    public int? MaxPriority { get; set; }

    /// <summary>Gets or sets how long a message may stay in this queue. An expired message is never delivered: it
    /// is dead-lettered with reason <c>expired</c>. With a message's own <see cref="PublishOptions.TimeToLive"/>,
    /// the smaller applies. Zero means: delivered at once to a waiting consumer, or expired.</summary>
    /// <value>The default value is <see langword="null"/>: messages do not expire.</value>
    public TimeSpan? MessageTtl { get; set; }

    internal QueueOptions Clone() => (QueueOptions)MemberwiseClone();

    internal bool IsEquivalentTo(QueueOptions o) =>
        DeadLetterExchange == o.DeadLetterExchange && DeadLetterRoutingKey == o.DeadLetterRoutingKey
        && DeadLetterQueue == o.DeadLetterQueue && MaxDeliveryCount == o.MaxDeliveryCount
        && AckTimeout == o.AckTimeout && ReferenceEquals(Redelivery, o.Redelivery)
        && SingleActiveConsumer == o.SingleActiveConsumer && MaxPriority == o.MaxPriority && MessageTtl == o.MessageTtl;

    /// <summary>Lists every problem with these options (empty when valid).</summary>
    internal IEnumerable<string> Validate(string queue)
    {
        if (DeadLetterQueue is not null && DeadLetterExchange is not null)
        {
            yield return $"Queue '{queue}' sets both DeadLetterQueue and DeadLetterExchange; set one.";
        }

        if (DeadLetterQueue is not null && DeadLetterRoutingKey is not null)
        {
            yield return $"Queue '{queue}' sets both DeadLetterQueue and DeadLetterRoutingKey; DeadLetterQueue already routes by the queue name.";
        }

        if (MaxDeliveryCount is < 1)
        {
            yield return $"Queue '{queue}' has MaxDeliveryCount {MaxDeliveryCount}; it must be 1 or more.";
        }

        if (AckTimeout is { } t && t <= TimeSpan.Zero)
        {
            yield return $"Queue '{queue}' has AckTimeout {t}; it must be positive.";
        }

        if (MessageTtl is { } ttl && ttl < TimeSpan.Zero)
        {
            yield return $"Queue '{queue}' has MessageTtl {ttl}; it must be zero or positive.";
        }

        if (MaxPriority is < 1 or > 255)
        {
            yield return $"Queue '{queue}' has MaxPriority {MaxPriority}; it must be 1-255.";
        }

        if (Redelivery is null)
        {
            yield return $"Queue '{queue}' has a null Redelivery policy; use RetryPolicy.None for no wait.";
        }
    }
}
