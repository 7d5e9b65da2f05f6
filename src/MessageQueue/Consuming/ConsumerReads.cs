using System.Runtime.CompilerServices;

namespace MessageQueue.Consuming;

/// <summary><see cref="IConsumer{T}.ReadAllAsync"/> for every backend's pull consumer: receives until the consumer
/// is disposed (then the sequence ends instead of throwing) or the token is cancelled.</summary>
internal static class ConsumerReads
{
    internal static async IAsyncEnumerable<Delivery<T>> ReadAllAsync<T>(IConsumer<T> consumer, Func<bool> disposed, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (!disposed())
        {
            Delivery<T> delivery;
            try
            {
                delivery = await consumer.ReceiveAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                yield break;
            }

            yield return delivery;
        }
    }
}
