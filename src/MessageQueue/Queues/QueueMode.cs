namespace MessageQueue;

/// <summary>Where a queue keeps its ready messages (RabbitMQ's <c>x-queue-mode</c>).</summary>
public enum QueueMode
{
    /// <summary>Ready messages are in memory (and, on a durable queue, persistent ones on disk too).</summary>
    Default = 0,

    /// <summary>Every message goes to the message store; only a window of the oldest ready messages is in memory,
    /// refilled from disk in order as consumers take them. Memory stays bounded whatever the backlog, at the
    /// cost of a write per message and a read per message once the backlog exceeds the window. Delayed messages
    /// wait in memory until due. A lazy queue that is not durable loses its messages on restart, as do
    /// non-persistent messages on a durable one.</summary>
    Lazy = 1,
}
