namespace MessageQueue;

/// <summary>
/// Options of a queue. Each behaves as the RabbitMQ queue argument of the same meaning.
/// </summary>
public sealed class QueueOptions
{
    /// <summary>Gets or sets whether the queue keeps its persistent messages in the broker's message store, so
    /// that they survive a restart or a crash. A persistent publish (the default; see
    /// <see cref="PublishOptions.Persistent"/>) completes only when its message is on disk. Needs a store
    /// (<c>UseSqlite</c>).</summary>
    /// <value>The default value is <see langword="false"/>: the queue lives in memory.</value>
    public bool Durable { get; set; }

    /// <summary>Gets or sets where the queue keeps its ready messages. A <see cref="QueueMode.Lazy"/> queue writes
    /// every message to the broker's message store and keeps only a small window in memory (see
    /// <see cref="StorageOptions.LazyWindow"/>), so a backlog of any size takes bounded memory. Needs a store.</summary>
    /// <value>The default value is <see cref="QueueMode.Default"/>: ready messages are in memory.</value>
    public QueueMode Mode { get; set; }

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
    /// message returns to the queue (<c>Redelivered = true</c>) and the consumer's late ack fails. The time counts
    /// from when the consumer's code takes the delivery (a message waiting in a prefetch window is not timed).
    /// Any length works; <see cref="Timeout.InfiniteTimeSpan"/> and <see cref="TimeSpan.MaxValue"/> mean no timeout.</summary>
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
    /// the smaller applies. Zero means: delivered at once to a waiting consumer, or expired. Any length works;
    /// <see cref="Timeout.InfiniteTimeSpan"/> and <see cref="TimeSpan.MaxValue"/> mean messages never expire.</summary>
    /// <value>The default value is <see langword="null"/>: messages do not expire.</value>
    public TimeSpan? MessageTtl { get; set; }

    /// <summary>Gets or sets the most ready messages the queue holds; what happens to one more is set by
    /// <see cref="Overflow"/>. Unacked and delayed messages do not count (as in RabbitMQ). Messages that come back
    /// (nack with requeue, an ack timeout, a consumer that left) return to their place, usually the head: under
    /// <see cref="OverflowPolicy.DropHead"/> a queue they take over its limit drops its head at once (dead-lettered
    /// with reason <c>maxlen</c>, often the returned message itself), as RabbitMQ does; under the other policies
    /// they are never refused, so they can take the queue over its limit for a while, and new messages are refused
    /// or wait until it is back under.</summary>
    /// <value>The default value is <see langword="null"/>: no limit.</value>
    public int? MaxLength { get; set; }

    /// <summary>Gets or sets the most body bytes the ready messages may take together, counted as with
    /// <see cref="MaxLength"/>. In memory a body is measured as: a <see cref="byte"/> array or
    /// <see cref="ReadOnlyMemory{T}"/> of bytes by its length, a string by its UTF-8 length, anything else by the
    /// length of its System.Text.Json serialization (measured once per message).</summary>
    /// <value>The default value is <see langword="null"/>: no limit.</value>
    public long? MaxLengthBytes { get; set; }

    /// <summary>Gets or sets what a full queue does with a new message.</summary>
    /// <value>The default value is <see cref="OverflowPolicy.DropHead"/>, as in RabbitMQ.</value>
    public OverflowPolicy Overflow { get; set; }

    /// <summary>Gets or sets how long the queue remembers the <see cref="PublishOptions.MessageId"/>s published to it:
    /// a second publish with the same id within the window is not enqueued, and its
    /// <see cref="PublishResult.IsDuplicate"/> is true. Only ids the publisher set count (generated ids never
    /// repeat); dead letters and redriven messages entering the queue are not checked. The window starts at the
    /// first publish of an id. <see cref="Timeout.InfiniteTimeSpan"/> and <see cref="TimeSpan.MaxValue"/> remember ids
    /// until <see cref="DeduplicationCapacity"/> pushes them out.</summary>
    /// <value>The default value is <see langword="null"/>: no deduplication.</value>
    public TimeSpan? DeduplicationWindow { get; set; }

    /// <summary>Gets or sets the most ids the deduplication window remembers. When more arrive within the window,
    /// the oldest are forgotten early. This bounds the window's memory: about 100 bytes per id plus the id string
    /// itself (about 10 MB plus the strings at the default).</summary>
    /// <value>The default value is 100,000.</value>
    public int DeduplicationCapacity { get; set; } = 100_000;

    internal QueueOptions Clone() => (QueueOptions)MemberwiseClone();

    internal bool IsEquivalentTo(QueueOptions o) =>
        Durable == o.Durable && Mode == o.Mode && DeadLetterExchange == o.DeadLetterExchange && DeadLetterRoutingKey == o.DeadLetterRoutingKey
        && DeadLetterQueue == o.DeadLetterQueue && MaxDeliveryCount == o.MaxDeliveryCount
        && AckTimeout == o.AckTimeout && Equals(Redelivery, o.Redelivery)
        && SingleActiveConsumer == o.SingleActiveConsumer && MaxPriority == o.MaxPriority && MessageTtl == o.MessageTtl
        && MaxLength == o.MaxLength && MaxLengthBytes == o.MaxLengthBytes && Overflow == o.Overflow
        && DeduplicationWindow == o.DeduplicationWindow && DeduplicationCapacity == o.DeduplicationCapacity;

    /// <summary>Lists every problem with these options (empty when valid), including the options
    /// <paramref name="backend"/> cannot honour.</summary>
    internal IEnumerable<string> Validate(string queue, Backend backend) =>
        backend.Refuse(queue, this)
            .Concat(ValidateDeadLettering(queue))
            .Concat(ValidateTimes(queue))
            .Concat(ValidateLimits(queue))
            .Concat(ValidateDeduplication(queue))
            .Concat(ValidateMode(queue));

    private IEnumerable<string> ValidateDeadLettering(string queue)
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
    }

    private IEnumerable<string> ValidateTimes(string queue)
    {
        if (AckTimeout is { } t && t <= TimeSpan.Zero && t != Timeout.InfiniteTimeSpan)
        {
            yield return $"Queue '{queue}' has AckTimeout {t}; it must be positive (Timeout.InfiniteTimeSpan or TimeSpan.MaxValue for no timeout).";
        }

        if (MessageTtl is { } ttl && ttl < TimeSpan.Zero && ttl != Timeout.InfiniteTimeSpan)
        {
            yield return $"Queue '{queue}' has MessageTtl {ttl}; it must be zero or positive (Timeout.InfiniteTimeSpan or TimeSpan.MaxValue for no expiry).";
        }

        if (Redelivery is null)
        {
            yield return $"Queue '{queue}' has a null Redelivery policy; use RetryPolicy.None for no wait.";
        }
        else if (Redelivery.HandledExceptions.Count > 0 || Redelivery.DeadLetteredExceptions.Count > 0)
        {
            yield return $"Queue '{queue}' has a Redelivery policy with exception filters ({Redelivery}); a nack has no exception, so they would be ignored. Set them on the subscription's Retry.";
        }
    }

    private IEnumerable<string> ValidateLimits(string queue)
    {
        if (MaxPriority is < 1 or > 255)
        {
            yield return $"Queue '{queue}' has MaxPriority {MaxPriority}; it must be 1-255.";
        }

        if (MaxLength is < 0)
        {
            yield return $"Queue '{queue}' has MaxLength {MaxLength}; it must be zero or more.";
        }

        if (MaxLengthBytes is < 0)
        {
            yield return $"Queue '{queue}' has MaxLengthBytes {MaxLengthBytes}; it must be zero or more.";
        }

        if (!Enum.IsDefined(Overflow))
        {
            yield return $"Queue '{queue}' has Overflow {(int)Overflow}, which is not an OverflowPolicy.";
        }
        else if (Overflow == OverflowPolicy.Block && (MaxLength == 0 || MaxLengthBytes == 0))
        {
            yield return $"Queue '{queue}' has Overflow Block with a limit of zero; publishers would wait forever. Raise the limit or choose another policy.";
        }
    }

    private IEnumerable<string> ValidateDeduplication(string queue)
    {
        if (DeduplicationWindow is { } window && window <= TimeSpan.Zero && window != Timeout.InfiniteTimeSpan)
        {
            yield return $"Queue '{queue}' has DeduplicationWindow {window}; it must be positive (Timeout.InfiniteTimeSpan or TimeSpan.MaxValue to remember ids until DeduplicationCapacity pushes them out).";
        }

        if (DeduplicationCapacity < 1)
        {
            yield return $"Queue '{queue}' has DeduplicationCapacity {DeduplicationCapacity}; it must be 1 or more.";
        }
    }

    private IEnumerable<string> ValidateMode(string queue)
    {
        if (!Enum.IsDefined(Mode))
        {
            yield return $"Queue '{queue}' has Mode {(int)Mode}, which is not a QueueMode.";
        }
        else if (Mode == QueueMode.Lazy && MaxPriority is not null)
        {
            yield return $"Queue '{queue}' is lazy and has MaxPriority; a lazy queue keeps its backlog on disk in publish order, so it cannot have priorities. Choose one.";
        }
    }
}
