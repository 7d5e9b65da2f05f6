namespace MessageQueue;

/// <summary>
/// A message published with <see cref="PublishOptions.Mandatory"/> matched no queue. Nothing was enqueued.
/// </summary>
public sealed class UnroutableMessageException : MessageQueueException
{
    /// <summary>Creates the exception for a message that matched no queue.</summary>
    /// <param name="exchange">The exchange the message was published to.</param>
    /// <param name="routingKey">The routing key it was published with.</param>
    public UnroutableMessageException(string exchange, string routingKey)
        : base($"The message published to exchange '{exchange}' with routing key '{routingKey}' matched no queue and was not enqueued (Mandatory = true). Bind a queue that matches the routing key, or set an alternate exchange.")
    {
        Exchange = exchange;
        RoutingKey = routingKey;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public UnroutableMessageException() : base("The message matched no queue and was not enqueued.") { Exchange = ""; RoutingKey = ""; }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public UnroutableMessageException(string message) : base(message) { Exchange = ""; RoutingKey = ""; }

    /// <summary>Creates the exception with a message and cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public UnroutableMessageException(string message, Exception? innerException) : base(message, innerException) { Exchange = ""; RoutingKey = ""; }

    /// <summary>Gets the exchange the message was published to.</summary>
    public string Exchange { get; }

    /// <summary>Gets the routing key the message was published with.</summary>
    public string RoutingKey { get; }
}
