namespace MessageQueue;

/// <summary>When the broker's health check reports <c>Degraded</c>.</summary>
public sealed class MessageQueueHealthCheckOptions
{
    /// <summary>Gets or sets the share of a queue's <see cref="QueueOptions.MaxLength"/> (its ready messages against the
    /// length; <see cref="QueueOptions.MaxLengthBytes"/> is not checked) above which the broker is degraded: publishers
    /// are about to be refused, blocked or have their oldest messages dropped.</summary>
    /// <value>The default value is 0.8. Between 0 and 1; 1 reports only full queues.</value>
    public double QueueFullShare { get; set; } = 0.8;

    /// <summary>Gets or sets how old the message at the head of a queue may be before the broker is degraded (its
    /// consumers do not keep up, or there are none). Dead-letter queues (those another queue names as its
    /// <see cref="QueueOptions.DeadLetterQueue"/>) are not checked: their messages wait for a person, and keep their
    /// publish time.</summary>
    /// <value>The default value is <see langword="null"/>: message age is not checked.</value>
    public TimeSpan? MaxHeadMessageAge { get; set; }

    /// <summary>Gets or sets the queues checked; null checks every queue.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public IReadOnlyCollection<string>? Queues { get; set; }
}
