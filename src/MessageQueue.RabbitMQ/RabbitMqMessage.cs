using System.Buffers;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>A message a RabbitMQ consumer received: its body (the bytes copied out of the client's buffer into an
/// array rented from <see cref="ArrayPool{T}.Shared"/>, given back by <see cref="Release"/> once the delivery is settled
/// and nothing needs them: a dead letter or a delayed redelivery republishes them), properties and delivery tag, the
/// channel it came on, and whether it was settled.</summary>
internal sealed class RabbitMqMessage(object body, byte[] raw, int length, bool rented, IReadOnlyBasicProperties properties, string exchange, string routingKey, ulong deliveryTag, int deliveryCount, IChannel channel, int epoch, CancellationToken lost)
{
    /// <summary>Gets a token cancelled when its channel closes (the server has it again): a retry held in place ends.</summary>
    internal CancellationToken Lost { get; } = lost;

    /// <summary>Gets the channel it came on: its settle goes there (a delivery tag means nothing on another).</summary>
    internal IChannel Channel { get; } = channel;

    /// <summary>Gets the consumer's epoch when it came: after its channel closed, the server has it again and it can
    /// no longer be settled.</summary>
    internal int Epoch { get; } = epoch;

    private MessageProperties? _properties;
    private int _settled;
    private byte[]? _raw = raw;

    internal object Body { get; } = body;

    /// <summary>Gets the body as it arrived (to dead-letter it with a reason, or delay it). Only the one who settled
    /// the delivery reads it, before <see cref="Release"/>.</summary>
    /// <exception cref="InvalidOperationException">It was released.</exception>
    internal ReadOnlyMemory<byte> Raw => new(Volatile.Read(ref _raw) ?? throw new InvalidOperationException("The delivery's bytes were released after it was settled."), 0, length);

    /// <summary>Gives the bytes back to the pool, once (by whoever settled the delivery, after the last use of
    /// <see cref="Raw"/>). A delivery never settled (its consumer went away) keeps them for the collector.</summary>
    internal void Release()
    {
        if (Interlocked.Exchange(ref _raw, null) is { } bytes && rented)
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>Gets the AMQP properties as they arrived.</summary>
    internal IReadOnlyBasicProperties Amqp { get; } = properties;

    internal string Exchange { get; } = exchange;

    internal string RoutingKey { get; } = routingKey;

    internal ulong DeliveryTag { get; } = deliveryTag;

    internal int DeliveryCount { get; } = deliveryCount;

    internal MessageProperties Properties => _properties ??= RabbitMqProperties.FromAmqp(Amqp);

    /// <summary>Gets whether the message was settled (acked, nacked or rejected).</summary>
    internal bool IsSettled => Volatile.Read(ref _settled) != 0;

    /// <summary>Marks the message settled; false when it already was.</summary>
    internal bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;
}
