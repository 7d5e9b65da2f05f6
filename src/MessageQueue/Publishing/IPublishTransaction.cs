namespace MessageQueue;

/// <summary>
/// Publishes that take effect together: staged messages become visible to consumers only at
/// <see cref="CommitAsync"/>, all at once, in every queue they route to, or not at all. Disposing without
/// committing discards them. Start one with <see cref="IProducer.BeginTransaction"/>.
/// </summary>
/// <remarks>
/// Routing happens at commit, against the topology of that moment (as in RabbitMQ's transactions). A commit
/// fails as a whole, enqueuing nothing anywhere, when a queue with <see cref="OverflowPolicy.RejectPublish"/> or
/// <see cref="OverflowPolicy.RejectPublishDeadLetter"/> cannot take its share (<see cref="QueueFullException"/>),
/// when a <see cref="PublishOptions.Mandatory"/> message matches no queue (<see cref="UnroutableMessageException"/>),
/// or when a queue or exchange was deleted (<see cref="TopologyException"/>). A full <see cref="OverflowPolicy.Block"/>
/// queue makes the commit wait until the whole share fits. Deduplication windows see the transaction's messages
/// at commit, duplicates within the transaction included. A transaction is used by one caller at a time.
/// </remarks>
public interface IPublishTransaction : IAsyncDisposable
{
    /// <summary>Gets how many messages are staged.</summary>
    int Count { get; }

    /// <summary>Stages a message for an exchange. The exchange must exist now; routing happens at commit.</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="exchange">The exchange name.</param>
    /// <param name="routingKey">The routing key.</param>
    /// <param name="message">The message body. Not null.</param>
    /// <param name="options">Properties and flags of this message.</param>
    /// <param name="cancellationToken">Cancels staging.</param>
    /// <returns>A task that completes when the message is staged.</returns>
    ValueTask PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Stages a message for a queue (through the default exchange).</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="queue">The queue name.</param>
    /// <param name="message">The message body. Not null.</param>
    /// <param name="options">Properties and flags of this message.</param>
    /// <param name="cancellationToken">Cancels staging.</param>
    /// <returns>A task that completes when the message is staged.</returns>
    ValueTask SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Publishes every staged message at once, or none of them.</summary>
    /// <param name="cancellationToken">Cancels a commit waiting for room in a full <see cref="OverflowPolicy.Block"/> queue; nothing is enqueued then.</param>
    /// <returns>One confirm per staged message, in staging order.</returns>
    /// <exception cref="QueueFullException">A queue refused its share; nothing was enqueued.</exception>
    /// <exception cref="InvalidOperationException">The transaction was already committed or disposed.</exception>
    ValueTask<IReadOnlyList<PublishResult>> CommitAsync(CancellationToken cancellationToken = default);
}
