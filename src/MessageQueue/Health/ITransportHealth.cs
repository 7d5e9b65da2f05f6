namespace MessageQueue.Health;

/// <summary>A transport's broker (<see cref="IBrokerTransport"/>) that reports its own health to the health check:
/// for RabbitMQ, whether its connection is up.</summary>
internal interface ITransportHealth
{
    /// <summary>Null when healthy; otherwise what is wrong (stopped, or the connection is down).</summary>
    string? Problem { get; }

    /// <summary>Gets a line saying what was checked (for a healthy result).</summary>
    string Description { get; }
}
