using MessageQueue.Consuming;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>The settles of a <see cref="RabbitMqConsumer{T}"/>'s deliveries: acks, nacks (delayed ones through the
/// delay cascade) and rejects (with a reason: dead-lettered by the transport).</summary>
internal sealed partial class RabbitMqConsumer<T>
{
    // ---- IDeliverySource: what a Delivery<T> of this consumer reaches (the handle is the RabbitMqMessage) ----
    bool IDeliverySource.AutoAck => _autoAck;

    TimeSpan? IDeliverySource.AckTimeout => null;

    object IDeliverySource.Body(object message) => ((RabbitMqMessage)message).Body;

    MessageProperties IDeliverySource.Properties(object message) => ((RabbitMqMessage)message).Properties;

    string IDeliverySource.Exchange(object message) => ((RabbitMqMessage)message).Exchange;

    string IDeliverySource.RoutingKey(object message) => ((RabbitMqMessage)message).RoutingKey;

    // The synchronous settles are the engine's (its subscriptions); this consumer's deliveries settle through the
    // asynchronous ones below, which Delivery<T> calls.
    SettleResult IDeliverySource.Ack(object message, int tag) => ((IDeliverySource)this).AckAsync(message, tag).AsTask().GetAwaiter().GetResult();

    SettleResult IDeliverySource.Nack(object message, int tag, bool requeue, TimeSpan? delay) => ((IDeliverySource)this).NackAsync(message, tag, requeue, delay).AsTask().GetAwaiter().GetResult();

    SettleResult IDeliverySource.Reject(object message, int tag, string? reason, Exception? exception) => ((IDeliverySource)this).RejectAsync(message, tag, reason, exception).AsTask().GetAwaiter().GetResult();

    ValueTask<SettleResult> IDeliverySource.AckAsync(object message, int tag) =>
        SettleAsync(message, static (channel, deliveryTag, _) => channel.BasicAckAsync(deliveryTag, multiple: false), requeue: false);

    ValueTask<SettleResult> IDeliverySource.NackAsync(object message, int tag, bool requeue, TimeSpan? delay)
    {
        var m = (RabbitMqMessage)message;
        var wait = delay ?? (requeue && _deadLetters?.Options(Queue)?.Redelivery is { MaxRetries: > 0 } redelivery ? redelivery.GetDelay(m.DeliveryCount) : TimeSpan.Zero);
        if (requeue && wait > TimeSpan.Zero)
        {
            RabbitMqDelays.Seconds(wait); // a delay the cascade cannot carry is refused before anything is settled
            RabbitMqDelays.ThrowIfNotDelayable(Queue, isQueue: true);
            return _delays is null
                ? throw new NotSupportedException($"This consumer of queue '{Queue}' cannot delay a redelivery (it was not made by a broker); nack without a delay.")
                : RequeueLaterAsync(m, wait);
        }

        return SettleAsync(message, static (channel, deliveryTag, requeue) => channel.BasicNackAsync(deliveryTag, multiple: false, requeue), requeue);
    }

    /// <summary>A nack with a delay (or the queue's <see cref="QueueOptions.Redelivery"/>): the message goes through
    /// the delay cascade back to this queue, its deliveries so far carried, and the delivery is acked once that
    /// publish is confirmed (a crash in between delivers it twice, never loses it). At the queue's delivery limit it
    /// is dead-lettered instead, as in memory. If the delayed publish fails, it is requeued at once instead.</summary>
    private async ValueTask<SettleResult> RequeueLaterAsync(RabbitMqMessage message, TimeSpan delay)
    {
        if (_deadLetters?.Options(Queue)?.MaxDeliveryCount is { } limit && message.DeliveryCount >= limit)
        {
            return await DeadLetterAsync(message, reason: null, exception: null, DeathRecord.DeliveryLimit).ConfigureAwait(false);
        }

        if (Settle(message) is { } refused)
        {
            return refused;
        }

        bool delayed;
        try
        {
            await _delays!.PublishAsync(toQueue: true, Queue, message.Exchange, message.RoutingKey, message.Raw, message.Properties, message.DeliveryCount, delay, CancellationToken.None).ConfigureAwait(false);
            delayed = true;
        }
#pragma warning disable CA1031 // Whatever stops the delayed copy (the server, the connection, a header it cannot carry), the message must not be lost.
        catch (Exception ex) when (ex is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            delayed = false; // redelivered at once rather than lost
        }
        finally
        {
            message.Release();
        }

        try
        {
            if (delayed)
            {
                await message.Channel.BasicAckAsync(message.DeliveryTag, multiple: false).ConfigureAwait(false);
            }
            else
            {
                await message.Channel.BasicNackAsync(message.DeliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
            }
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return SettleResult.ConsumerGone;
        }

        return SettleResult.Ok;
    }

    ValueTask<SettleResult> IDeliverySource.RejectAsync(object message, int tag, string? reason, Exception? exception) =>
        (reason ?? (object?)exception) is not null && _deadLetters is not null && _deadLetters.Knows(Queue)
            ? DeadLetterAsync((RabbitMqMessage)message, reason, exception)
            : SettleAsync(message, static (channel, deliveryTag, _) => channel.BasicRejectAsync(deliveryTag, requeue: false), requeue: false); // RabbitMQ dead-letters it

    /// <summary>A reject with a reason or an exception: RabbitMQ's reject cannot carry them, so the transport publishes
    /// the dead letter itself (with the <c>x-death</c> record RabbitMQ would write, and the reason and exception
    /// headers), waits for the confirm, and only then acks the delivery. A crash in between dead-letters it twice
    /// (at least once, never lost); a dead letter that cannot be published falls back to a plain reject.</summary>
    private async ValueTask<SettleResult> DeadLetterAsync(RabbitMqMessage message, string? reason, Exception? exception, string death = DeathRecord.Rejected)
    {
        if (Settle(message) is { } refused)
        {
            return refused;
        }

        bool published;
        try
        {
            published = await _deadLetters!.TryPublishAsync(Queue, message, reason, exception, death).ConfigureAwait(false);
        }
        finally
        {
            message.Release();
        }

        try
        {
            if (published)
            {
                await message.Channel.BasicAckAsync(message.DeliveryTag, multiple: false).ConfigureAwait(false);
            }
            else
            {
                await message.Channel.BasicRejectAsync(message.DeliveryTag, requeue: false).ConfigureAwait(false);
            }
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return SettleResult.ConsumerGone;
        }

        return SettleResult.Ok;
    }

    /// <summary>Sends a settle of <paramref name="message"/> to the server, once: refused when it was settled before
    /// or this consumer is gone (then, or when the channel closes meanwhile, the server requeued the message).</summary>
    private async ValueTask<SettleResult> SettleAsync(object message, Func<IChannel, ulong, bool, ValueTask> send, bool requeue)
    {
        var m = (RabbitMqMessage)message;
        if (Settle(m) is { } refused)
        {
            return refused;
        }

        m.Release(); // settled by this call: nothing reads its bytes again
        try
        {
            await send(m.Channel, m.DeliveryTag, requeue).ConfigureAwait(false);
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return SettleResult.ConsumerGone;
        }

        return SettleResult.Ok;
    }

    /// <summary>Null when the message may be settled now; otherwise why not (settled before, or this consumer is gone
    /// and the server requeued it).</summary>
    private SettleResult? Settle(RabbitMqMessage message)
    {
        if (Volatile.Read(ref _disposed) != 0 || !message.Channel.IsOpen || message.Epoch != Volatile.Read(ref _epoch))
        {
            return SettleResult.ConsumerGone;
        }

        return message.TrySettle() ? null : SettleResult.AlreadySettled;
    }
}
