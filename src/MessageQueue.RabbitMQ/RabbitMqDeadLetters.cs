using MessageQueue.Queues;
using Microsoft.Extensions.Logging;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Dead-lettering with a reason on RabbitMQ. RabbitMQ's <c>basic.reject</c> dead-letters a message but carries no
/// text, so a reject with a reason (<see cref="Delivery{T}.RejectAsync"/>), a handler whose retries are exhausted
/// (the <c>x-exception-*</c> headers) and a body that is not the consumer's type are dead-lettered by the transport:
/// it publishes the message to the queue's dead-letter target with the <c>x-death</c> record RabbitMQ would have
/// written (the same record the in-memory broker writes), waits for the confirm, and only then acks the delivery.
/// It knows the dead-letter target of the queues this broker declared; for others it returns false and the caller
/// rejects (RabbitMQ dead-letters without the reason).
/// </summary>
internal sealed partial class RabbitMqDeadLetters(RabbitMqPublisher publisher, Func<string, QueueOptions?> queueOptions, TimeProvider time, ILogger logger)
{
    /// <summary>Whether the transport knows where <paramref name="queue"/>'s dead letters go.</summary>
    internal bool Knows(string queue) => Target(queue) is not null;

    /// <summary>Publishes <paramref name="message"/> as a dead letter of <paramref name="queue"/> and waits for the
    /// confirm. False when the queue has no known dead-letter target, or the publish failed (logged).</summary>
    internal async ValueTask<bool> TryPublishAsync(string queue, RabbitMqMessage message, string? reason, Exception? exception, string death = DeathRecord.Rejected)
    {
        if (Target(queue) is not var (exchange, routingKey))
        {
            return false;
        }

        try
        {
            var properties = DeadLetterRouter.Record(message.Properties, queue, death, message.Exchange, message.RoutingKey, reason, exception, time.GetUtcNow());
            var amqp = RabbitMqProperties.ToAmqp(properties);
            await publisher.PublishAsync(exchange, routingKey ?? message.RoutingKey, message.Raw, amqp, properties.MessageId, mandatory: false, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogDeadLetterFailed(logger, queue, message.Properties.MessageId, ex);
            return false;
        }
    }

    /// <summary>The options of <paramref name="queue"/> when this broker declared it, else null.</summary>
    internal QueueOptions? Options(string queue) => queueOptions(queue);

    private (string Exchange, string? RoutingKey)? Target(string queue) => queueOptions(queue) switch
    {
        { DeadLetterQueue: { } dlq } => ("", dlq),
        { DeadLetterExchange: { } dlx } o => (dlx, o.DeadLetterRoutingKey),
        _ => null,
    };

    [LoggerMessage(EventId = 60, EventName = "RabbitMqDeadLetterFailed", Level = LogLevel.Warning, Message = "Could not publish the dead letter of message {MessageId} from queue '{Queue}' with its reason; rejecting it instead (RabbitMQ dead-letters it without the reason)")]
    private static partial void LogDeadLetterFailed(ILogger logger, string queue, string messageId, Exception exception);
}
