namespace MessageQueue;

/// <summary>When a pull consumer's deliveries are acknowledged.</summary>
public enum AckMode
{
    /// <summary>Your code calls <see cref="Delivery{T}.AckAsync"/>, <see cref="Delivery{T}.NackAsync"/> or
    /// <see cref="Delivery{T}.RejectAsync"/> (at-least-once).</summary>
    Manual,

    /// <summary>A message is acknowledged when it is handed to your code (at-most-once, as RabbitMQ's auto-ack).</summary>
    Auto,
}
