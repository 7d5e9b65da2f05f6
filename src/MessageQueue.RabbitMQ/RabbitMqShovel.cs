using MessageQueue.RabbitMq;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MessageQueue;

/// <summary>Options of a <see cref="RabbitMqShovel"/>.</summary>
public sealed class RabbitMqShovelOptions
{
    /// <summary>Gets or sets the routing key the messages are published with; the default is
    /// <see langword="null"/>: each message's own (the key it was published with to the local queue, or the queue's
    /// name for a send).</summary>
    public string? RoutingKey { get; set; }

    /// <summary>Gets or sets how the bodies are written for RabbitMQ; the default is JSON
    /// (<see cref="JsonMessageSerializer"/>), as the RabbitMQ transport's.</summary>
    public IMessageSerializer Serializer { get; set; } = new JsonMessageSerializer();

    /// <summary>Gets or sets how many local messages are read ahead; they are still forwarded one at a time, in order.
    /// The default is 64.</summary>
    public int Prefetch { get; set; } = 64;

    /// <summary>Gets or sets where the shovel logs (a warning each time RabbitMQ refuses or cannot be reached, at most
    /// once per outage); the default logs nowhere.</summary>
    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>Gets the connection options (cluster nodes, the connection's name and timeout).</summary>
    public RabbitMqOptions Connection { get; } = new() { ClientProvidedName = "MessageQueue shovel" };
}

/// <summary>
/// Store-and-forward to RabbitMQ (RabbitMQ's "shovel", the reliable producer's outbox done for you): forwards every
/// message of a local queue (a durable queue of an in-process broker on SQLite or LiteDB) to an exchange on a RabbitMQ
/// server. The application's publishes to the local queue are confirmed by the local store, even while RabbitMQ is
/// down; the shovel publishes each message to RabbitMQ with a publisher confirm and acks it in the local queue only
/// after RabbitMQ confirmed it, one at a time, in the queue's order. While RabbitMQ cannot be reached (or refuses a
/// message), the shovel waits and tries the same message again, so nothing is lost and nothing overtakes it. A message
/// reaches RabbitMQ twice when the local queue redelivers it (the process stopped between RabbitMQ's confirm and the
/// local ack): <see cref="Redelivered"/> counts those; or when the connection drops after RabbitMQ took the message but
/// before its confirm arrived: the one message in flight is sent again (at most one per drop, not counted). A message
/// RabbitMQ routes to no queue is dropped there, as a RabbitMQ shovel's is.
/// </summary>
public sealed partial class RabbitMqShovel : IAsyncDisposable
{
    private readonly IMessageBroker _local;
    private readonly string _queue;
    private readonly Uri _uri;
    private readonly string _exchange;
    private readonly RabbitMqShovelOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _running;
    private long _forwarded;
    private long _redelivered;
    private int _disposed;

    private RabbitMqShovel(IMessageBroker local, string queue, Uri uri, string exchange, RabbitMqShovelOptions options)
    {
        _local = local;
        _queue = queue;
        _uri = uri;
        _exchange = exchange;
        _options = options;
        _logger = options.LoggerFactory.CreateLogger("MessageQueue.RabbitMQ.Shovel");
        _running = Task.Run(RunAsync);
    }

    /// <summary>Gets how many messages were forwarded (confirmed by RabbitMQ, then acked locally).</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Gets how many of them the local queue had redelivered: each may have reached RabbitMQ twice.</summary>
    public long Redelivered => Interlocked.Read(ref _redelivered);

    /// <summary>Starts forwarding the messages of <paramref name="queue"/> on <paramref name="local"/> to
    /// <paramref name="exchange"/> on the RabbitMQ server at <paramref name="url"/>. Returns at once: the shovel
    /// connects (and reconnects) in the background, so it can start while RabbitMQ is down.</summary>
    /// <param name="local">The in-process broker that holds the queue.</param>
    /// <param name="queue">The local queue to forward (durable, on a store, for the promise above to hold).</param>
    /// <param name="url">The RabbitMQ server's AMQP URL.</param>
    /// <param name="exchange">The RabbitMQ exchange to publish to (<c>""</c>: the default exchange, which routes by
    /// queue name).</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>The running shovel; dispose it to stop (what is not confirmed stays in the local queue).</returns>
    /// <exception cref="ArgumentException">An empty queue name, or a URL that is not an AMQP URL.</exception>
    /// <exception cref="TopologyException">The local queue does not exist.</exception>
    public static RabbitMqShovel Start(IMessageBroker local, string queue, string url, string exchange, Action<RabbitMqShovelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentException.ThrowIfNullOrEmpty(queue);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        ArgumentNullException.ThrowIfNull(exchange);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "amqp" && uri.Scheme != "amqps"))
        {
            throw new ArgumentException("The RabbitMQ URL is not an amqp:// or amqps:// URI (for example amqp://user:pass@localhost:5672/vhost).", nameof(url));
        }

        var options = new RabbitMqShovelOptions();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentNullException.ThrowIfNull(options.Serializer, "options.Serializer");
        _ = local.Management.GetQueueInfo(queue); // an unknown queue is refused now, not in the background
        return new RabbitMqShovel(local, queue, uri, exchange, options);
    }

    private async Task RunAsync()
    {
        var stop = _stopping.Token;
        await using var consumer = _local.Consume<object>(_queue, o => o.Prefetch = _options.Prefetch);
        global::RabbitMQ.Client.IConnection? connection = null;
        RabbitMqPublisher? publisher = null;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                Delivery<object> delivery;
                try
                {
                    delivery = await consumer.ReceiveAsync(stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }

                var properties = delivery.Properties;
                byte[] body;
                global::RabbitMQ.Client.BasicProperties amqp;
                try
                {
                    body = _options.Serializer.Serialize(delivery.Message, delivery.Message.GetType());
                    amqp = RabbitMqProperties.ToAmqp(properties);
                }
#pragma warning disable CA1031 // Whatever makes a message unsendable, it is dead-lettered locally with the reason; the rest go on.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    LogUnsendable(_logger, properties.MessageId, ex);
                    await delivery.RejectAsync($"The shovel could not write the message for RabbitMQ: {ex.Message}").ConfigureAwait(false);
                    continue;
                }

                var routingKey = _options.RoutingKey ?? delivery.RoutingKey;
                var wait = TimeSpan.FromMilliseconds(200);
                var warned = false;
                while (true)
                {
                    try
                    {
                        if (publisher is null)
                        {
                            connection = await RabbitMqTransport.ConnectAsync(_uri, _options.Connection, stop).ConfigureAwait(false);
                            publisher = new RabbitMqPublisher(connection, _options.Serializer, new RabbitMqRecovery(connection, TimeSpan.FromSeconds(5)));
                        }

                        await publisher.PublishAsync(_exchange, routingKey, body, amqp, properties.MessageId, mandatory: false, stop).ConfigureAwait(false);
                        break;
                    }
                    catch (OperationCanceledException) when (stop.IsCancellationRequested)
                    {
                        return; // not confirmed: it stays in the local queue (redelivered next time)
                    }
                    catch (Exception ex) when (ex is MessageQueueException or global::RabbitMQ.Client.Exceptions.RabbitMQClientException or IOException or ObjectDisposedException)
                    {
                        if (!warned)
                        {
                            LogWaiting(_logger, properties.MessageId, _exchange, ex);
                            warned = true;
                        }

                        await Task.Delay(wait, stop).ConfigureAwait(false); // RabbitMQ is down or refuses: the same message again
                        wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                    }
                }

                await delivery.AckAsync().ConfigureAwait(false); // only now: RabbitMQ confirmed it
                Interlocked.Increment(ref _forwarded);
                if (delivery.Redelivered)
                {
                    Interlocked.Increment(ref _redelivered);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // stopping
        }
        finally
        {
            if (publisher is not null)
            {
                await publisher.DisposeAsync().ConfigureAwait(false);
            }

            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Stops forwarding: a message not yet confirmed by RabbitMQ stays in the local queue.</summary>
    /// <returns>A task that completes when the shovel stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _running.ConfigureAwait(false);
        }
        finally
        {
            _stopping.Dispose();
        }
    }

    [LoggerMessage(EventId = 63, EventName = "ShovelUnsendable", Level = LogLevel.Warning, Message = "The shovel could not write message {MessageId} for RabbitMQ; it was dead-lettered in the local queue")]
    private static partial void LogUnsendable(ILogger logger, string messageId, Exception exception);

    [LoggerMessage(EventId = 62, EventName = "ShovelWaiting", Level = LogLevel.Warning, Message = "The shovel could not forward message {MessageId} to RabbitMQ exchange '{Exchange}'; it keeps trying the same message")]
    private static partial void LogWaiting(ILogger logger, string messageId, string exchange, Exception exception);
}
