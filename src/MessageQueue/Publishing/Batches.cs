namespace MessageQueue.Publishing;

/// <summary><see cref="IProducer.PublishBatchAsync{T}"/> as every producer does it: one transaction, all or nothing.</summary>
internal static class Batches
{
    internal static async ValueTask<IReadOnlyList<PublishResult>> PublishAsync<T>(IProducer producer, string exchange, string routingKey, IEnumerable<T> messages, Func<T, PublishOptions?>? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        await using var transaction = producer.BeginTransaction();
        foreach (var message in messages)
        {
            await transaction.PublishAsync(exchange, routingKey, message, options?.Invoke(message), cancellationToken).ConfigureAwait(false);
        }

        return await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }
}
