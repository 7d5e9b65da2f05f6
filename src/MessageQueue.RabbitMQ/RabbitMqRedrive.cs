using MessageQueue.Publishing;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Moves dead letters back to the queue of their death history that the <see cref="RedriveTarget"/> names, on
/// RabbitMQ: each message is taken with <c>basic.get</c> (unacked), republished to its queue through the default
/// exchange with a confirm (mandatory, so a missing queue returns it), and acked only after the confirm: a crash in
/// between leaves it in both queues (at least once, never lost). The delivery count is reset (<c>x-delivery-count</c>
/// is dropped) and the death history kept. Messages whose queue is gone or refuses them (full, reject-publish) stay
/// unacked until the end, when closing the channel puts them back in their place (marked redelivered).
/// </summary>
internal sealed class RabbitMqRedrive(RabbitMqBroker broker, string source, RedriveTarget target)
{
    internal async Task<int> RunAsync(int max, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var moved = 0;
        var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(broker.Connection, cancellationToken: cancellationToken).ConfigureAwait(false);
        await using (channel.ConfigureAwait(false))
        {
            while (moved < max)
            {
                cancellationToken.ThrowIfCancellationRequested();
                BasicGetResult? got;
                try
                {
                    got = await channel.BasicGetAsync(source, autoAck: false, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
                {
                    throw new TopologyException($"Queue '{source}' does not exist on the RabbitMQ server.", ex);
                }

                if (got is null)
                {
                    break; // nothing more (those that stay are held by this channel)
                }

                if (await MoveAsync(got, cancellationToken).ConfigureAwait(false))
                {
                    await channel.BasicAckAsync(got.DeliveryTag, multiple: false, cancellationToken).ConfigureAwait(false);
                    moved++;
                }
            }
        }

        return moved;
    }

    /// <summary>Republishes a dead letter to its queue; false when it stays (no origin, origin gone or full).</summary>
    private async Task<bool> MoveAsync(BasicGetResult got, CancellationToken cancellationToken)
    {
        var properties = RabbitMqProperties.FromAmqp(got.BasicProperties);
        var origin = target == RedriveTarget.FirstDeath
            ? properties.Headers.TryGetValue(HeaderRules.FirstDeathQueue, out var first) ? first as string : null
            : properties.Deaths.Count > 0 ? properties.Deaths[0].Queue : null;
        if (origin is null || origin == source)
        {
            return false;
        }

        try
        {
            var headers = properties.Headers.Where(h => h.Key != "x-delivery-count").ToDictionary(h => h.Key, h => h.Value, StringComparer.Ordinal);
            var redriven = properties.With(headers, properties.Deaths);
            var amqp = RabbitMqProperties.ToAmqp(redriven);
            amqp.Expiration = null; // a dead letter has none (RabbitMQ removed it)
            await broker.Publisher.PublishAsync("", origin, got.Body.ToArray(), amqp, properties.MessageId, mandatory: true, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is UnroutableMessageException or QueueFullException or ArgumentException)
        {
            return false; // its queue is gone, full, or the message cannot be republished as it is: it stays
        }
    }
}
