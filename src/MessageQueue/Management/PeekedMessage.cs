namespace MessageQueue;

/// <summary>A message seen by <see cref="IBrokerManagement.PeekAsync"/>, left in its queue.</summary>
public sealed class PeekedMessage
{
    internal PeekedMessage(object body, MessageProperties properties, string exchange, string routingKey, int deliveryCount)
    {
        Body = body;
        Properties = properties;
        Exchange = exchange;
        RoutingKey = routingKey;
        DeliveryCount = deliveryCount;
    }

    /// <summary>Gets the message body.</summary>
    public object Body { get; }

    /// <summary>Gets the message properties.</summary>
    public MessageProperties Properties { get; }

    /// <summary>Gets the exchange the message was published (or dead-lettered) to.</summary>
    public string Exchange { get; }

    /// <summary>Gets the routing key the message was published (or dead-lettered) with.</summary>
    public string RoutingKey { get; }

    /// <summary>Gets how many times the message has been delivered so far.</summary>
    public int DeliveryCount { get; }
}
