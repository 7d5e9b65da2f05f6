namespace MessageQueue;

/// <summary>Publishes messages. Every publish is a confirm: when the returned task completes, the message is
/// in every queue it routes to; when it throws, the message is in none, with one exception taken from RabbitMQ:
/// a <see cref="QueueFullException"/> from a single publish says which other queues still got the message.</summary>
public interface IProducer
{
    /// <summary>Publishes a message to an exchange.</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="exchange">The exchange name; <c>""</c> is the default exchange (routes to the queue named by the routing key).</param>
    /// <param name="routingKey">The routing key (at most 255 characters).</param>
    /// <param name="message">The message body. Not null.</param>
    /// <param name="options">Properties and flags of this publish.</param>
    /// <param name="cancellationToken">Cancels the publish before it takes effect.</param>
    /// <returns>The confirm: message id and how many queues the message reached.</returns>
    /// <exception cref="TopologyException">The exchange does not exist.</exception>
    /// <exception cref="UnroutableMessageException"><see cref="PublishOptions.Mandatory"/> is set and no queue matched.</exception>
    /// <exception cref="ArgumentException">A header value cannot travel, or the routing key is too long.</exception>
    /// <exception cref="QueueFullException">A queue with <see cref="OverflowPolicy.RejectPublish"/> was full; the exception names the queues that still got the message.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled, possibly while waiting for room in a full <see cref="OverflowPolicy.Block"/> queue; nothing was enqueued.</exception>
    /// <exception cref="ObjectDisposedException">The broker was disposed.</exception>
    ValueTask<PublishResult> PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Sends a message straight to a queue (through the default exchange).</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="queue">The queue name.</param>
    /// <param name="message">The message body. Not null.</param>
    /// <param name="options">Properties and flags of this publish.</param>
    /// <param name="cancellationToken">Cancels the send before it takes effect.</param>
    /// <returns>The confirm.</returns>
    /// <exception cref="TopologyException">The queue does not exist.</exception>
    /// <exception cref="ObjectDisposedException">The broker was disposed.</exception>
    ValueTask<PublishResult> SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Starts a transaction: messages published through it become visible only at its commit, all
    /// at once, or never.</summary>
    /// <returns>The transaction; dispose it (committed or not).</returns>
    /// <exception cref="ObjectDisposedException">The broker was disposed.</exception>
    IPublishTransaction BeginTransaction();

    /// <summary>Publishes several messages as one transaction: all of them, at once, or none.</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="exchange">The exchange name.</param>
    /// <param name="routingKey">The routing key of every message.</param>
    /// <param name="messages">The message bodies, in publish order.</param>
    /// <param name="options">Gives each message its options (for example its <see cref="PublishOptions.MessageId"/>); null for none.</param>
    /// <param name="cancellationToken">Cancels the batch while it waits for room; nothing is enqueued then.</param>
    /// <returns>One confirm per message, in order.</returns>
    /// <exception cref="QueueFullException">A queue refused its share; nothing was enqueued.</exception>
    ValueTask<IReadOnlyList<PublishResult>> PublishBatchAsync<T>(string exchange, string routingKey, IEnumerable<T> messages, Func<T, PublishOptions?>? options = null, CancellationToken cancellationToken = default);
}
