namespace MessageQueue;

/// <summary>
/// One entry of a message's dead-letter history (<see cref="MessageProperties.Deaths"/>): the message died
/// <see cref="Count"/> times in <see cref="Queue"/> for <see cref="Reason"/>, as RabbitMQ's <c>x-death</c> records it.
/// </summary>
public sealed class DeathRecord
{
    /// <summary>The message was rejected, or nacked without requeue, or its handler failed past its retries.</summary>
    public const string Rejected = "rejected";

    /// <summary>The message's time to live passed.</summary>
    public const string Expired = "expired";

    /// <summary>The queue's length limit pushed the message out.</summary>
    public const string MaxLength = "maxlen";

    /// <summary>The message was delivered as many times as the queue's <c>MaxDeliveryCount</c> allows.</summary>
    public const string DeliveryLimit = "delivery_limit";

    /// <summary>Creates a record.</summary>
    /// <param name="queue">The queue the message died in.</param>
    /// <param name="reason">Why: <see cref="Rejected"/>, <see cref="Expired"/>, <see cref="MaxLength"/> or <see cref="DeliveryLimit"/>.</param>
    /// <param name="count">How many times it died in that queue for that reason.</param>
    /// <param name="time">When it first died there for that reason.</param>
    /// <param name="exchange">The exchange the message had been published to.</param>
    /// <param name="routingKeys">The routing keys it had been published with.</param>
    public DeathRecord(string queue, string reason, long count, DateTimeOffset time, string exchange, IReadOnlyList<string> routingKeys)
    {
        Queue = queue;
        Reason = reason;
        Count = count;
        Time = time;
        Exchange = exchange;
        RoutingKeys = routingKeys;
    }

    /// <summary>Gets the queue the message died in.</summary>
    public string Queue { get; }

    /// <summary>Gets the reason: <c>rejected</c>, <c>expired</c>, <c>maxlen</c> or <c>delivery_limit</c>.</summary>
    public string Reason { get; }

    /// <summary>Gets how many times the message died in this queue for this reason.</summary>
    public long Count { get; }

    /// <summary>Gets when the message first died in this queue for this reason.</summary>
    public DateTimeOffset Time { get; }

    /// <summary>Gets the exchange the message had been published to when it died.</summary>
    public string Exchange { get; }

    /// <summary>Gets the routing keys the message had when it died.</summary>
    public IReadOnlyList<string> RoutingKeys { get; }

    /// <summary>Gets the expiration the message carried before it was dead-lettered, if any.</summary>
    public TimeSpan? OriginalExpiration { get; init; }

    /// <inheritdoc/>
    public override string ToString() => $"{Reason} in '{Queue}' x{Count} at {Time:O}";
}
