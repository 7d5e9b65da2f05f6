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
/// <remarks>Publishes run on a few channels (<see cref="Channels"/>) in confirm mode whose confirms the transport
/// tracks itself (<see cref="RabbitMqConfirmChannel"/>), so many publishes share a channel and the server confirms them
/// in batches; at most <see cref="MaxOutstanding"/> are outstanding at once, more wait. Before the first publish to an
/// exchange, the transport checks that it exists (a passive declare, remembered), so that a misaddressed publish does
/// not close a channel others are using. A channel that closes fails what is outstanding on it and is replaced; those
/// publishes are sent again on another channel (they may then arrive twice: a message the server routed but had not
/// confirmed). While the connection is down (the client recovers it), a publish waits up to
/// <see cref="RabbitMqOptions.RecoveryTimeout"/> for it and is then sent again, with the same possibility of a duplicate;
/// a confirmed message is never lost.</remarks>
internal sealed partial class RabbitMqPublisher(IConnection connection, IMessageSerializer serializer, RabbitMqRecovery? recovery = null) : IAsyncDisposable
{
    /// <summary>How many channels publish (round robin).</summary>
    internal const int Channels = 4;

    /// <summary>The most publishes outstanding at once; more wait.</summary>
    internal const int MaxOutstanding = 4096;

    private const int ChannelRetries = 3;

    private readonly RabbitMqRecovery _recovery = recovery ?? new RabbitMqRecovery(connection, TimeSpan.FromSeconds(30));
    private readonly RabbitMqConfirmChannel?[] _channels = new RabbitMqConfirmChannel?[Channels];
    private readonly SemaphoreSlim _opening = new(1, 1);
    private readonly SemaphoreSlim _slots = new(MaxOutstanding, MaxOutstanding);
    private readonly ConcurrentDictionary<string, byte> _exchanges = new(StringComparer.Ordinal) { [""] = 0 };
    private readonly ConcurrentDictionary<string, Task> _checks = new(StringComparer.Ordinal);
    private int _turn;
    private volatile bool _disposed;

    /// <summary>Publishes <paramref name="message"/> with <paramref name="properties"/> and waits for the confirm.</summary>
    internal ValueTask<PublishResult> PublishAsync(string exchange, string routingKey, object message, MessageProperties properties, bool mandatory, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var body = Serialize(message);
        return PublishAsync(exchange, routingKey, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory, cancellationToken);
    }

    /// <summary>Publishes a body as it is (a dead letter, a re-driven message) and waits for the confirm; while the
    /// connection is down, waits for it (see the remarks). <paramref name="firstError"/>, when given, is how a first
    /// attempt made elsewhere failed (<see cref="TryPublishDefault"/>): it is handled as this loop handles its own.</summary>
    internal async ValueTask<PublishResult> PublishAsync(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties amqp, string messageId, bool mandatory, CancellationToken cancellationToken, Exception? firstError = null)
    {
        ObjectDisposedException.ThrowIf(_disposed && firstError is null, this);
        var deadline = DateTime.MinValue;
        var channelRetries = 0;
        while (true)
        {
            try
            {
                if (firstError is { } failed)
                {
                    firstError = null;
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed);
                }

                var routed = await PublishOnceAsync(exchange, routingKey, body, amqp, messageId, cancellationToken).ConfigureAwait(false);
                return routed
                    ? new PublishResult(messageId, routedQueues: 1)
                    : mandatory ? throw new UnroutableMessageException(exchange, routingKey) : new PublishResult(messageId, routedQueues: 0);
            }
            catch (RabbitMqNackException ex)
            {
                throw exchange.Length == 0
                    ? new QueueFullException($"Queue '{routingKey}' refused the message (RabbitMQ nacked it: the queue is full and its overflow is reject-publish, or the server could not take it); nothing was enqueued.", ex)
                    : new MessageQueueException($"RabbitMQ refused the message published to exchange '{exchange}' with routing key '{routingKey}' (a nack: a queue it routes to is full with reject-publish overflow, or the server could not take it).", ex);
            }
            catch (AlreadyClosedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound && ex.ShutdownReason.ReplyText.Contains($"exchange '{exchange}'", StringComparison.Ordinal))
            {
                _exchanges.TryRemove(exchange, out _);
                throw new TopologyException($"Exchange '{exchange}' does not exist on the RabbitMQ server ({ex.ShutdownReason.ReplyText}); declare it first. Nothing was published.", ex);
            }
            catch (AlreadyClosedException ex) when (ex.ShutdownReason is { Initiator: ShutdownInitiator.Peer } reason && reason.ReplyText.Contains($"exchange '{exchange}'", StringComparison.Ordinal))
            {
                // The server refused this publish (its exchange named: access refused, an internal exchange).
                throw new MessageQueueException($"RabbitMQ refused the publish to exchange '{exchange}' with routing key '{routingKey}': {reason.ReplyText}.", ex);
            }
            catch (Exception ex) when (_disposed && ex is AlreadyClosedException or ObjectDisposedException)
            {
                throw new ObjectDisposedException($"The broker stopped before RabbitMQ confirmed the publish to exchange '{exchange}' with routing key '{routingKey}'; it may or may not have been routed.", ex);
            }
            catch (Exception ex) when (_recovery.IsConnectionLoss(ex) && !_disposed)
            {
                if (deadline == DateTime.MinValue)
                {
                    deadline = _recovery.Deadline();
                }

                await _recovery.WaitAsync(deadline, $"the publish to exchange '{exchange}' with routing key '{routingKey}'", ex, cancellationToken).ConfigureAwait(false);
            }
            catch (AlreadyClosedException ex) when (!_disposed && connection.IsOpen)
            {
                // Its channel closed for another publish's error (the connection is up): again on another channel.
                if (++channelRetries > ChannelRetries)
                {
                    throw new MessageQueueException($"The publish to exchange '{exchange}' with routing key '{routingKey}' failed: its channel was closed {ChannelRetries} times ({ex.ShutdownReason?.ReplyText ?? ex.Message}).", ex);
                }
            }
        }
    }

    private async Task<bool> PublishOnceAsync(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties amqp, string messageId, CancellationToken cancellationToken)
    {
        if (!_exchanges.ContainsKey(exchange))
        {
            await _checks.GetOrAdd(exchange, CheckExchangeAsync).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false); // held until the publish completes, waited for or not
        RabbitMqConfirmChannel channel;
        try
        {
            channel = await ChannelAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _slots.Release();
            throw;
        }

        return await channel.PublishAsync(exchange, routingKey, body, amqp, _slots, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Checks that <paramref name="exchange"/> exists (a passive declare on a channel of its own; one check at a
    /// time per exchange, shared by the publishes that wait for it), so that a publish to a missing exchange fails alone
    /// instead of closing a shared channel.</summary>
    private async Task CheckExchangeAsync(string exchange)
    {
        try
        {
            var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(connection).ConfigureAwait(false);
            await using (channel.ConfigureAwait(false))
            {
                try
                {
                    await channel.ExchangeDeclarePassiveAsync(exchange).ConfigureAwait(false);
                }
                catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
                {
                    throw new TopologyException($"Exchange '{exchange}' does not exist on the RabbitMQ server ({ex.ShutdownReason.ReplyText}); declare it first. Nothing was published.", ex);
                }
            }

            _exchanges[exchange] = 0;
        }
        finally
        {
            _checks.TryRemove(exchange, out _); // known now, or checked again next time
        }
    }

    /// <summary>Forgets that <paramref name="exchange"/> exists (it was deleted).</summary>
    internal void Forget(string exchange)
    {
        if (exchange.Length > 0)
        {
            _exchanges.TryRemove(exchange, out _);
        }
    }

    /// <summary>The next channel in turn, opened (again) when it is not usable; a broken one is closed, never reused.</summary>
    private ValueTask<RabbitMqConfirmChannel> ChannelAsync(CancellationToken cancellationToken) => ChannelAsync(NextSlot(), cancellationToken);

    private int NextSlot() => (int)((uint)Interlocked.Increment(ref _turn) % Channels);

    /// <summary>The channel of <paramref name="slot"/>, opened (again) when it is not usable.</summary>
    private async ValueTask<RabbitMqConfirmChannel> ChannelAsync(int slot, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _channels[slot]) is { IsUsable: true } ready)
        {
            return ready;
        }

        await _opening.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var current = _channels[slot];
            if (current is { IsUsable: true })
            {
                return current;
            }

            if (current is not null)
            {
                _ = current.DisposeAsync().AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }

            ObjectDisposedException.ThrowIf(_disposed, this);
            var opened = await RabbitMqConfirmChannel.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _channels[slot], opened);
            if (_disposed)
            {
                await opened.DisposeAsync().ConfigureAwait(false); // DisposeAsync ran meanwhile: nothing stays open after it
                ObjectDisposedException.ThrowIf(true, this);
            }

            return opened;
        }
        finally
        {
            _opening.Release();
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

    /// <summary>Stops publishing: new publishes are refused; those outstanding get up to 5 seconds for their confirms;
    /// then the channels close, failing what is left with an <see cref="ObjectDisposedException"/>.</summary>
    /// <returns>A task that completes when the channels are closed.</returns>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        for (var held = 0; held < MaxOutstanding && DateTime.UtcNow < deadline; held++)
        {
            if (!await _slots.WaitAsync(deadline - DateTime.UtcNow).ConfigureAwait(false))
            {
                break; // confirms still outstanding after the wait: they fail below
            }
        }

        await _opening.WaitAsync().ConfigureAwait(false); // no channel is being opened
        try
        {
            for (var i = 0; i < _channels.Length; i++)
            {
                if (Interlocked.Exchange(ref _channels[i], null) is { } channel)
                {
                    await channel.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _opening.Release();
        }
    }
}
