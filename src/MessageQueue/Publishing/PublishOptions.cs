namespace MessageQueue;

/// <summary>Options for one publish. Every property is optional.</summary>
public sealed class PublishOptions
{
    /// <summary>Gets or sets the message id.</summary>
    /// <value>The default value is <see langword="null"/>: the broker generates a unique id.</value>
    public string? MessageId { get; set; }

    /// <summary>Gets or sets the correlation id.</summary>
    public string? CorrelationId { get; set; }

    /// <summary>Gets or sets the reply address.</summary>
    public string? ReplyTo { get; set; }

    /// <summary>Gets or sets the application headers. Values must be strings, booleans, integers, floating point
    /// numbers, decimals, <see cref="Guid"/>, <see cref="DateTimeOffset"/>, byte arrays, <see langword="null"/>, or lists of these.
    /// Broker-owned headers (<c>x-death*</c>, <c>x-first-death-*</c>, <c>x-last-death-*</c>, <c>x-exception-*</c>,
    /// <c>x-rejection-reason</c>) are removed.</summary>
    public IReadOnlyDictionary<string, object?>? Headers { get; set; }

    /// <summary>Gets or sets the priority (0-255), used by queues with a maximum priority.</summary>
    /// <value>The default value is 0.</value>
    public byte Priority { get; set; }

    /// <summary>Gets or sets the content type recorded in the properties.</summary>
    public string? ContentType { get; set; }

    /// <summary>Gets or sets whether the message fails with <see cref="UnroutableMessageException"/> when it matches no queue.</summary>
    /// <value>The default value is <see langword="false"/>: an unroutable message is dropped and
    /// <see cref="PublishResult.RoutedQueues"/> is 0.</value>
    public bool Mandatory { get; set; }

    /// <summary>Gets or sets how long the message may wait in a queue before it expires (is dead-lettered with
    /// reason <c>expired</c> instead of delivered). A queue's <see cref="QueueOptions.MessageTtl"/> may be shorter:
    /// the smaller applies. Recorded in <see cref="MessageProperties.Expiration"/>. Any length works;
    /// <see cref="TimeSpan.MaxValue"/> and <see cref="Timeout.InfiniteTimeSpan"/> mean "never expires".</summary>
    /// <value>The default value is <see langword="null"/>: no expiry of its own.</value>
    public TimeSpan? TimeToLive { get; set; }

    /// <summary>Gets or sets how long the message waits in its queues before it becomes ready. A delayed message is
    /// counted as delayed, not ready, until then. Any length works (waits longer than the system timer's limit
    /// of about 49.7 days are taken in steps); a delay that would end after <see cref="DateTimeOffset.MaxValue"/>
    /// is refused with <see cref="ArgumentOutOfRangeException"/>. Set this or <see cref="DeliverAt"/>, not both.</summary>
    /// <value>The default value is <see langword="null"/>: ready at once.</value>
    public TimeSpan? Delay { get; set; }

    /// <summary>Gets or sets when the message becomes ready in its queues; a time in the past means at once.
    /// Set this or <see cref="Delay"/>, not both.</summary>
    /// <value>The default value is <see langword="null"/>: ready at once.</value>
    public DateTimeOffset? DeliverAt { get; set; }

    /// <summary>Gets or sets whether durable queues write the message to disk.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Persistent { get; set; } = true;
}
