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
/// with a warning, as RabbitMQ drops a publish that reaches no queue. One whose publish waited longer than
/// <see cref="RabbitMqOptions.RecoveryTimeout"/> for the connection (or the client's recovery of it) is not refused:
/// it goes back to the forward queue and is forwarded again.
/// </summary>
internal sealed partial class RabbitMqForwarder : IAsyncDisposable
{
    private readonly RabbitMqBroker _broker;
    private IChannel _channel = null!;
    private volatile bool _disposed;

    private RabbitMqForwarder(RabbitMqBroker broker) => _broker = broker;

    internal static async Task<RabbitMqForwarder> StartAsync(RabbitMqBroker broker, CancellationToken cancellationToken)
    {
        var forwarder = new RabbitMqForwarder(broker);
        await forwarder.OpenAsync(cancellationToken).ConfigureAwait(false);
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
        var (exchange, routingKey) = RabbitMqDelays.Origin(e.BasicProperties.Headers, e.Exchange, e.RoutingKey);
        var properties = RabbitMqProperties.FromAmqp(e.BasicProperties); // without the cascade's traces
        var body = e.Body.ToArray();
        try
        {
            await _broker.Publisher.PublishAsync(exchange, routingKey, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory: false, CancellationToken.None).ConfigureAwait(false);
        }
        catch (MessageQueueException ex) when (RabbitMqRecovery.IsDown(ex) || !_broker.Recovery.IsUp)
        {
            // Not a refusal: the publish waited for the connection or its recovery longer than RecoveryTimeout. Back to
            // the forward queue, forwarded again (the next attempt waits as long again).
            await RequeueAsync(channel, e.DeliveryTag).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is TopologyException or QueueFullException or ArgumentException || ex.GetType() == typeof(MessageQueueException))
        {
            LogDropped(_broker.Logger, properties.MessageId, exchange, routingKey, ex);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException or global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            return; // stopping: the server gives it to another broker, or to this one's next run
        }

        try
        {
            await channel.BasicAckAsync(e.DeliveryTag, multiple: false).ConfigureAwait(false);
        }
        catch (global::RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            // Closed meanwhile: the server forwards it again (at least once).
        }
    }

    private static async Task RequeueAsync(IChannel channel, ulong deliveryTag)
    {
        try
        {
            await channel.BasicNackAsync(deliveryTag, multiple: false, requeue: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or ObjectDisposedException)
        {
            // Closed meanwhile: the server requeues it anyway.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
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
}
