namespace MessageQueue;

/// <summary>
/// A pull consumer of one queue. Dispose it to leave the queue: its unsettled deliveries return to the queue
/// and are redelivered with <see cref="Delivery{T}.Redelivered"/> set.
/// </summary>
/// <typeparam name="T">The message type. A message that is not a <typeparamref name="T"/> is dead-lettered
/// with a reason instead of being delivered.</typeparam>
public interface IConsumer<T> : IAsyncDisposable
{
    /// <summary>Gets the queue name.</summary>
    string Queue { get; }

    /// <summary>Waits for the next delivery.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The delivery.</returns>
    /// <exception cref="ObjectDisposedException">The consumer was disposed.</exception>
    /// <exception cref="TopologyException">The queue was deleted.</exception>
    ValueTask<Delivery<T>> ReceiveAsync(CancellationToken cancellationToken = default);

    /// <summary>Takes the next delivery if one is waiting in the consumer's window.</summary>
    /// <param name="delivery">The delivery, when there was one.</param>
    /// <returns>Whether a delivery was taken.</returns>
    bool TryReceive(out Delivery<T> delivery);

    /// <summary>Reads deliveries until the consumer is disposed or the token is cancelled.</summary>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <returns>The deliveries.</returns>
    IAsyncEnumerable<Delivery<T>> ReadAllAsync(CancellationToken cancellationToken = default);
}
