namespace MessageQueue;

/// <summary>Handles messages of one type. The delivery is acknowledged when the handler returns; an exception
/// applies the subscription's retry policy.</summary>
/// <typeparam name="T">The message type.</typeparam>
public interface IMessageHandler<T>
{
    /// <summary>Handles one delivery.</summary>
    /// <param name="delivery">The delivery.</param>
    /// <param name="cancellationToken">Cancelled when the broker stops and the shutdown timeout has passed.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    ValueTask HandleAsync(Delivery<T> delivery, CancellationToken cancellationToken);
}
