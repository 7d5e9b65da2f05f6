namespace MessageQueue;

/// <summary>How the broker uses its message store (the SQLite store's options derive from it).</summary>
public class StorageOptions
{
    /// <summary>Gets or sets how many ready messages of a lazy queue are kept in memory. The window is refilled
    /// from the store, in order, when half of it has been taken.</summary>
    /// <value>The default value is 256.</value>
    public int LazyWindow { get; set; } = 256;

    /// <summary>Gets or sets the most changes (inserts, deletes, delivery counts) written in one transaction.
    /// Concurrent publishes share transactions up to this size; a larger backlog is written in several. A single
    /// publish (a transaction or batch) is never split, whatever its size.</summary>
    /// <value>The default value is 10,000.</value>
    public int MaxBatchSize { get; set; } = 10_000;

    /// <summary>Gets or sets how long acks, rejects, delivery counts and dead letters may wait before they are
    /// written. Within this time they join the next publish's transaction instead of costing one of their own, which
    /// matters most to one busy publisher. A crash within it can only cause redeliveries of messages whose acks were
    /// not yet written (as RabbitMQ does), never a loss. <see cref="TimeSpan.Zero"/> writes them as soon as the
    /// writer is free. The wait is counted on the broker's <see cref="TimeProvider"/>: with a manual or fake clock,
    /// they wait until the clock moves on, a publish is written, or the broker is disposed.</summary>
    /// <value>The default value is 5 milliseconds.</value>
    public TimeSpan AckDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    internal void Validate()
    {
        if (AckDelay < TimeSpan.Zero || AckDelay > TimeSpan.FromSeconds(10))
        {
            throw new ArgumentOutOfRangeException(nameof(AckDelay), AckDelay, "AckDelay must be between zero and 10 seconds.");
        }

        if (LazyWindow < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(LazyWindow), LazyWindow, "LazyWindow must be 2 or more.");
        }

        if (MaxBatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBatchSize), MaxBatchSize, "MaxBatchSize must be 1 or more.");
        }
    }
}
