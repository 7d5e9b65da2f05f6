namespace MessageQueue;

/// <summary>
/// A transport that runs the broker's API on another broker (the RabbitMQ transport, <c>UseRabbitMq</c>). When a
/// builder has one, <see cref="MessageBrokerBuilder.Build"/> validates the topology as for the in-process broker, with
/// the transport's own refusals, and then lets the transport build the broker. A test harness ignores the transport
/// and keeps everything in memory.
/// </summary>
internal interface IBrokerTransport
{
    /// <summary>Gets what the transport can honour (durable queues; its refusals).</summary>
    Backend Backend { get; }

    /// <summary>Builds the broker from the builder's validated topology.</summary>
    IMessageBroker Build(MessageBrokerBuilder builder);
}
