using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMq;

/// <summary>
/// The last hop of a delayed publish to an exchange (<see cref="RabbitMqDelays"/>): consumes the forward queue and
/// republishes each message to the exchange it was published to, with its own routing key and properties (the
/// cascade's traces removed), waits for the confirm, and only then acks it; a crash in between forwards it again (at
/// least once). Every broker of the transport consumes it once it knows the cascade exists, so a delayed publish is
/// forwarded as long as one of them runs. A message whose exchange is gone, or that a full queue refuses, is dropped
/// with a warning, as RabbitMQ drops a publish that reaches no queue. One whose publish failed otherwise (the connection
/// down, or its recovery longer than <see cref="RabbitMqOptions.RecoveryTimeout"/>) goes back to the forward queue after
/// a one-second pause, with a warning, and is forwarded again; it may then reach its exchange twice (a publish that
/// failed may have reached the server), as at least once allows.
/// </summary>
internal sealed partial class RabbitMqForwarder : IAsyncDisposable
{
    private readonly RabbitMqBroker _broker;
    private IChannel _channel = null!;
    private volatile bool _disposed;
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>How long a publish that failed for the connection waits before it is tried again.</summary>
    private static readonly TimeSpan RetryPause = TimeSpan.FromSeconds(1);

    private RabbitMqForwarder(RabbitMqBroker broker) => _broker = broker;

    internal static async Task<RabbitMqForwarder> StartAsync(RabbitMqBroker broker, CancellationToken cancellationToken)
    {
        var forwarder = new RabbitMqForwarder(broker);
        try
        {
            await forwarder.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            forwarder._disposed = true; // a reopening started by the failed channel's shutdown stops
            await forwarder._stopping.CancelAsync().ConfigureAwait(false);
            throw;
        }

        return forwarder;
    }

    /// <summary>Consumes the forward queue on a new channel: at the start, and again when the server closed the
    /// channel while the connection stayed up (a dropped connection is the client's to recover, with this channel).</summary>
    private async Task OpenAsync(CancellationToken cancellationToken)
    {
        var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(_broker.Connection, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.BasicQosAsync(0, 32, global: false, cancellationToken).ConfigureAwait(false);
            var listener = new AsyncEventingBasicConsumer(channel);
            listener.ReceivedAsync += (_, e) => ForwardAsync(channel, e);
            channel.ChannelShutdownAsync += (_, e) =>
            {
                if (!_disposed && ReferenceEquals(channel, Volatile.Read(ref _channel)) && e.Initiator != ShutdownInitiator.Application && _broker.Connection.IsOpen)
                {
                    _ = ReopenAsync(channel);
                }

                return Task.CompletedTask;
            };
            Volatile.Write(ref _channel, channel);
            await channel.BasicConsumeAsync(RabbitMqDelays.ForwardQueue, autoAck: false, listener, cancellationToken).ConfigureAwait(false);
            if (_disposed)
            {
                await channel.CloseAsync(CancellationToken.None).ConfigureAwait(false); // stopped meanwhile
                await channel.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private Task ReopenAsync(IChannel closed) =>
        RabbitMqReopen.RunAsync(closed, () => OpenAsync(CancellationToken.None), () => _disposed, static _ => false);

    private async Task ForwardAsync(IChannel channel, BasicDeliverEventArgs e)
    {
        string exchange, routingKey;
        MessageProperties properties;
        byte[] body;
        try
        {
            (exchange, routingKey) = RabbitMqDelays.Origin(e.BasicProperties.Headers, e.Exchange, e.RoutingKey);
            properties = RabbitMqProperties.FromAmqp(e.BasicProperties); // without the cascade's traces
            body = e.Body.ToArray();
        }
#pragma warning disable CA1031 // A message this forwarder cannot read never will be: dropped, said so, not left unacked.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogDropped(_broker.Logger, e.BasicProperties.MessageId ?? "(no id)", e.Exchange, e.RoutingKey, ex);
            await SettleAsync(channel, e.DeliveryTag).ConfigureAwait(false);
            return;
        }

        try
        {
            await _broker.Publisher.PublishAsync(exchange, routingKey, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory: false, _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (_disposed || ex is ObjectDisposedException)
        {
            return; // stopping: unacked, the server gives it to a broker that forwards
        }
        catch (Exception ex) when (ex is TopologyException or QueueFullException or ArgumentException || (ex.GetType() == typeof(MessageQueueException) && !RabbitMqRecovery.IsDown(ex) && _broker.Recovery.IsUp))
        {
            LogDropped(_broker.Logger, properties.MessageId, exchange, routingKey, ex); // refused: RabbitMQ drops such a publish too
        }
#pragma warning disable CA1031 // Anything else is not known to be the message's fault: it is kept.
        catch (Exception ex) when (ex is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            // The connection down, or recovering longer than RecoveryTimeout, or another failure: back to the forward
            // queue after a pause (a requeue at once would come straight back, a spin while the client recovers).
            LogWaiting(_broker.Logger, properties.MessageId, exchange, ex);
            try
            {
                await Task.Delay(RetryPause, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return; // stopping
            }

            await SettleAsync(channel, e.DeliveryTag, requeue: true).ConfigureAwait(false);
            return;
        }

        await SettleAsync(channel, e.DeliveryTag).ConfigureAwait(false);
    }

    /// <summary>Acks the delivery, or nacks it with requeue; a channel closed meanwhile has given it back to the server,
    /// which forwards it again (at least once).</summary>
    private static async Task SettleAsync(IChannel channel, ulong deliveryTag, bool requeue = false)
    {
        try
        {
            if (requeue)
            {
                await channel.BasicNackAsync(deliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
            }
            else
            {
                await channel.BasicAckAsync(deliveryTag, multiple: false).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or ObjectDisposedException)
        {
            // Closed meanwhile.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        await _stopping.CancelAsync().ConfigureAwait(false); // a publish or pause under way ends, its message unacked
        var channel = Volatile.Read(ref _channel);
        try
        {
            await channel.CloseAsync().ConfigureAwait(false); // what was not acked returns to the forward queue
        }
        catch (Exception ex) when (ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Closed by the server or the connection first. (Disposed: the server closed it and RabbitMqReopen disposed
            // it before a new one was in place; OpenAsync closes that one when it sees this forwarder disposed.)
        }

        await channel.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 61, EventName = "DelayedPublishDropped", Level = LogLevel.Warning, Message = "A delayed message {MessageId} for exchange '{Exchange}' (routing key '{RoutingKey}') could not be delivered when due and was dropped")]
    private static partial void LogDropped(ILogger logger, string messageId, string exchange, string routingKey, Exception exception);

    [LoggerMessage(EventId = 64, EventName = "DelayedPublishWaiting", Level = LogLevel.Warning, Message = "A delayed message {MessageId} for exchange '{Exchange}' is due but could not be published; it goes back to the forward queue in a second")]
    private static partial void LogWaiting(ILogger logger, string messageId, string exchange, Exception exception);
}
