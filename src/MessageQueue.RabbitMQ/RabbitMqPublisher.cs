using System.Collections.Concurrent;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Publishes with publisher confirms (issue 18, point 3): a publish completes when RabbitMQ has taken the message
/// (routed, and written to disk for persistent messages in durable queues). Each publish is mandatory on the wire, so
/// a message that reaches no queue is known: with <see cref="PublishOptions.Mandatory"/> it is an
/// <see cref="UnroutableMessageException"/>, otherwise a result with no routed queue (RabbitMQ says whether a message
/// was routed, not to how many queues: <see cref="PublishResult.RoutedQueues"/> is 1 or 0). A nack (a full
/// <c>reject-publish</c> queue) is a <see cref="QueueFullException"/> naming the queue for a send to a queue, a
/// <see cref="MessageQueueException"/> for a publish through an exchange (RabbitMQ does not say which queue refused).
/// A publish to an exchange that does not exist is a <see cref="TopologyException"/>.
/// </summary>
/// <remarks>Publishes run on a pool of at most <see cref="MaxChannels"/> channels, one publish per channel at a time
/// (RabbitMQ.Client 7.1 can fail confirm tracking when publishes share a channel concurrently:
/// rabbitmq-dotnet-client#1818); more concurrent publishes wait for a channel. A channel the server closed (an error)
/// is dropped from the pool, never reused. While the connection is down (the client recovers it), a publish waits up
/// to <see cref="RabbitMqOptions.RecoveryTimeout"/> for it and is then sent again; a publish that was sent but not
/// confirmed when the connection dropped is sent again too, so it may arrive twice (never lost once confirmed).</remarks>
internal sealed class RabbitMqPublisher(IConnection connection, IMessageSerializer serializer, RabbitMqRecovery? recovery = null) : IAsyncDisposable
{
    private readonly RabbitMqRecovery _recovery = recovery ?? new RabbitMqRecovery(connection, TimeSpan.FromSeconds(30));

    /// <summary>The most channels publishing at once (a connection carries at most 2047 channels in all).</summary>
    internal const int MaxChannels = 128;

    private readonly ConcurrentBag<IChannel> _idle = [];
    private readonly SemaphoreSlim _slots = new(MaxChannels, MaxChannels);
    private volatile bool _disposed;

    /// <summary>Publishes <paramref name="message"/> with <paramref name="properties"/> and waits for the confirm.</summary>
    internal ValueTask<PublishResult> PublishAsync(string exchange, string routingKey, object message, MessageProperties properties, bool mandatory, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var body = Serialize(message);
        return PublishAsync(exchange, routingKey, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory, cancellationToken);
    }

    /// <summary>Publishes a body as it is (a dead letter, a re-driven message) and waits for the confirm; while the
    /// connection is down, waits for it (see the remarks).</summary>
    internal async ValueTask<PublishResult> PublishAsync(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties amqp, string messageId, bool mandatory, CancellationToken cancellationToken)
    {
        var deadline = _recovery.Deadline();
        while (true)
        {
            try
            {
                return await PublishOnceAsync(exchange, routingKey, body, amqp, messageId, mandatory, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (_recovery.IsConnectionLoss(ex) && !_disposed)
            {
                await _recovery.WaitAsync(deadline, $"the publish to exchange '{exchange}' with routing key '{routingKey}'", ex, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask<PublishResult> PublishOnceAsync(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties amqp, string messageId, bool mandatory, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        IChannel channel;
        try
        {
            channel = await RentAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _slots.Release();
            throw;
        }

        var healthy = true;
        try
        {
            await channel.BasicPublishAsync(exchange, routingKey, mandatory: true, amqp, body, cancellationToken).ConfigureAwait(false);
            return new PublishResult(messageId, routedQueues: 1);
        }
        catch (PublishException ex) when (ex.IsReturn)
        {
            return mandatory ? throw new UnroutableMessageException(exchange, routingKey) : new PublishResult(messageId, routedQueues: 0);
        }
        catch (PublishException ex)
        {
            throw exchange.Length == 0
                ? new QueueFullException($"Queue '{routingKey}' refused the message (RabbitMQ nacked it: the queue is full and its overflow is reject-publish, or the server could not take it); nothing was enqueued.", ex)
                : new MessageQueueException($"RabbitMQ refused the message published to exchange '{exchange}' with routing key '{routingKey}' (a nack: a queue it routes to is full with reject-publish overflow, or the server could not take it).", ex);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            healthy = false;
            throw new TopologyException($"Exchange '{exchange}' does not exist on the RabbitMQ server ({ex.ShutdownReason.ReplyText}); declare it first. Nothing was published.", ex);
        }
        catch
        {
            healthy = false;
            throw;
        }
        finally
        {
            Return(channel, healthy);
            _slots.Release();
        }
    }

    internal byte[] Serialize(object message)
    {
        try
        {
            return serializer.Serialize(message, message.GetType());
        }
        catch (Exception ex) when (ex is not MessageSerializationException and not OutOfMemoryException)
        {
            throw new MessageSerializationException($"The message (a '{message.GetType().FullName}') could not be serialized for RabbitMQ: {ex.Message} Nothing was published.", ex);
        }
    }

    private async ValueTask<IChannel> RentAsync(CancellationToken cancellationToken)
    {
        while (_idle.TryTake(out var channel))
        {
            if (channel.IsOpen)
            {
                return channel;
            }

            await channel.DisposeAsync().ConfigureAwait(false);
        }

        return await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken).ConfigureAwait(false);
    }

    private void Return(IChannel channel, bool healthy)
    {
        if (healthy && channel.IsOpen && !_disposed)
        {
            _idle.Add(channel);
            while (_disposed && _idle.TryTake(out var late))
            {
                _ = late.DisposeAsync().AsTask(); // DisposeAsync drained the pool meanwhile: nothing stays open after it
            }
        }
        else
        {
            _ = channel.DisposeAsync().AsTask(); // closed by the server, or the publisher is gone: never reused
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        while (_idle.TryTake(out var channel))
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }
}
