using System.Collections.Concurrent;
using MessageQueue.Consuming;
using MessageQueue.Routing;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// The MessageQueue API on a RabbitMQ server (<c>UseRabbitMq</c>): publishes go out with publisher confirms, pull
/// consumers and subscriptions consume with <c>basic.qos</c> and explicit acks, and <see cref="Management"/> declares
/// and deletes on the server. One connection; a pool of confirm channels for publishing; one channel per consumer.
/// Disposing stops the subscriptions (running handlers get the shutdown timeout), closes the consumers' channels (the
/// server requeues what they had not settled) and then the connection.
/// </summary>
internal sealed class RabbitMqBroker : IMessageBroker, Health.ITransportHealth
{
    private readonly IConnection _connection;
    private readonly RabbitMqPublisher _publisher;
    private readonly RabbitMqManagement _management;
    private readonly ConcurrentDictionary<IAsyncDisposable, byte> _consumers = new();
    private volatile bool _disposed;
    private Task? _disposing;

    internal RabbitMqBroker(IConnection connection, RabbitMqOptions options, IEnumerable<QueueItem> queues, IMessageSerializer serializer, TimeProvider time, ILoggerFactory loggers, TimeSpan shutdownTimeout, System.Diagnostics.Metrics.IMeterFactory? meterFactory = null, string brokerName = "default")
    {
        _connection = connection;
        Options = options;
        Serializer = serializer;
        Time = time;
        Logger = loggers.CreateLogger("MessageQueue.RabbitMQ");
        ShutdownTimeout = shutdownTimeout;
        foreach (var queue in queues)
        {
            Queues[queue.Name] = queue.Options;
        }

        Recovery = new RabbitMqRecovery(connection, options.RecoveryTimeout);
        Metrics = new Diagnostics.BrokerMetrics(meterFactory, topology: null, brokerName);
        _publisher = new RabbitMqPublisher(connection, serializer, Recovery);
        DeadLetters = new RabbitMqDeadLetters(_publisher, q => Queues.TryGetValue(q, out var o) ? o : null, time, Logger);
        _management = new RabbitMqManagement(this);
        Delays = new RabbitMqDelays(this);
    }

    /// <inheritdoc/>
    public IBrokerManagement Management => _management;

    internal IConnection Connection => _connection;

    internal RabbitMqPublisher Publisher => _publisher;

    internal RabbitMqOptions Options { get; }

    internal IMessageSerializer Serializer { get; }

    internal TimeProvider Time { get; }

    internal ILogger Logger { get; }

    internal TimeSpan ShutdownTimeout { get; }

    internal RabbitMqDeadLetters DeadLetters { get; }

    internal RabbitMqDelays Delays { get; }

    /// <summary>Gets the broker's instruments on the <c>MessageQueue</c> meter: sends and handler durations (the queue
    /// counts are the server's: <see cref="RabbitMqOptions.ManagementUrl"/>).</summary>
    internal Diagnostics.BrokerMetrics Metrics { get; }

    /// <summary>Gets the server, without the password (for messages).</summary>
    internal string Server { get; init; } = "the RabbitMQ server";

    /// <inheritdoc/>
    string? Health.ITransportHealth.Problem =>
        _disposed ? "The message broker was stopped."
        : !Recovery.IsUp ? $"The connection to the RabbitMQ server at {Server} is down; the client is reconnecting (publishes wait up to {Options.RecoveryTimeout})."
        : null;

    /// <inheritdoc/>
    string Health.ITransportHealth.Description => $"Connected to the RabbitMQ server at {Server}.";

    /// <summary>Gets whether the connection is up (the client recovers it when it drops).</summary>
    internal RabbitMqRecovery Recovery { get; }

    /// <summary>Gets RabbitMQ's management HTTP API, when its URL was given.</summary>
    internal RabbitMqHttpApi? HttpApi { get; init; }

    internal RabbitMqManagement ManagementImpl => _management;

    /// <summary>Gets the options of the queues this broker declared (for their dead-letter targets).</summary>
    internal ConcurrentDictionary<string, QueueOptions> Queues { get; } = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public ValueTask<PublishResult> PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        NameRules.ThrowIfInvalidRoutingKey(routingKey, nameof(routingKey));
        ArgumentNullException.ThrowIfNull(message);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<PublishResult>(cancellationToken);
        }

        Metrics.CountSent(exchange, "publish");
        if (Diagnostics.BrokerTracing.Source.HasListeners())
        {
            return PublishTraced(exchange, routingKey, message, options, cancellationToken);
        }

        return options is null && !cancellationToken.CanBeCanceled && TryPublishDefault(exchange, routingKey, message, send: false, out var started)
            ? started
            : PublishCore(exchange, routingKey, message, options, cancellationToken);
    }

    private ValueTask<PublishResult> PublishTraced(string exchange, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken) =>
        Diagnostics.BrokerTracing.Traced(exchange, routingKey, send: false, options, o => PublishCore(exchange, routingKey, message, o, cancellationToken));

    /// <summary>A publish without options and without a cancellable token, when the publisher can start it at once
    /// without allocating (<see cref="RabbitMqPublisher.TryPublishDefault"/>). The message is serialized only once it
    /// can; a failure to serialize or a type name AMQP cannot carry is thrown (a send: the returned task faults) as on
    /// the general path.</summary>
    private bool TryPublishDefault(string exchange, string routingKey, object message, bool send, out ValueTask<PublishResult> started)
    {
        started = default;
        if (!_publisher.CanStartDefault(exchange))
        {
            return false;
        }

        byte[] body;
        try
        {
            body = _publisher.Serialize(message);
        }
        catch (Exception ex) when (send)
        {
            started = ValueTask.FromException<PublishResult>(ex);
            return true;
        }

        try
        {
            if (_publisher.TryPublishDefault(exchange, routingKey, body, MessageTypeNames.NameOf(message.GetType()), Time.GetUtcNow().UtcTicks, send, out started))
            {
                return true;
            }
        }
        catch (ArgumentException ex) when (send)
        {
            started = ValueTask.FromException<PublishResult>(ex);
            return true;
        }

        // It could not start at once after all: the general path, with the body made.
        var properties = MessageBroker.DefaultProperties(message, Time.GetUtcNow().UtcTicks);
        started = send ? SendBodyAsync(routingKey, body, properties) : _publisher.PublishAsync(exchange, routingKey, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory: false, CancellationToken.None);
        return true;
    }

    private async ValueTask<PublishResult> SendBodyAsync(string queue, byte[] body, MessageProperties properties)
    {
        try
        {
            return await _publisher.PublishAsync("", queue, body, RabbitMqProperties.ToAmqp(properties), properties.MessageId, mandatory: true, CancellationToken.None).ConfigureAwait(false);
        }
        catch (UnroutableMessageException ex)
        {
            throw RabbitMqPublisher.NoSuchQueue(queue, ex);
        }
    }

    private ValueTask<PublishResult> PublishCore(string exchange, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken)
    {
        var properties = Properties(message, options, out var delay);
        if (delay > TimeSpan.Zero)
        {
            if (options is { Mandatory: true })
            {
                throw new NotSupportedException("PublishOptions.Mandatory cannot be honoured for a delayed publish on RabbitMQ: the message is routed only when it is due. Publish it without Mandatory, or route it through an alternate exchange. Nothing was published.");
            }

            return exchange.Length == 0
                ? SendAsync(routingKey, message, properties, delay, cancellationToken) // the default exchange routes by queue name
                : PublishDelayedAsync(exchange, routingKey, message, properties, delay, cancellationToken);
        }

        return _publisher.PublishAsync(exchange, routingKey, message, properties, options is { Mandatory: true }, cancellationToken);
    }

    private ValueTask<PublishResult> PublishDelayedAsync(string exchange, string routingKey, object message, MessageProperties properties, TimeSpan delay, CancellationToken cancellationToken) =>
        Delays.PublishAsync(toQueue: false, exchange, exchange, routingKey, _publisher.Serialize(message), properties, 0, delay, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<PublishResult> SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(message);
        ThrowIfDisposed();
        if (NameRules.Check(queue, "queue") is { } problem)
        {
            throw new ArgumentException(problem, nameof(queue));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<PublishResult>(cancellationToken);
        }

        Metrics.CountSent(queue, "send");
        if (Diagnostics.BrokerTracing.Source.HasListeners())
        {
            return SendTraced(queue, message, options, cancellationToken);
        }

        return options is null && !cancellationToken.CanBeCanceled && TryPublishDefault("", queue, message, send: true, out var started)
            ? started
            : SendAsync(queue, message, Properties(message, options, out var delay), delay, cancellationToken);
    }

    private ValueTask<PublishResult> SendTraced(string queue, object message, PublishOptions? options, CancellationToken cancellationToken) =>
        Diagnostics.BrokerTracing.Traced("", queue, send: true, options, o => SendAsync(queue, message, Properties(message, o, out var delay), delay, cancellationToken));

    private async ValueTask<PublishResult> SendAsync(string queue, object message, MessageProperties properties, TimeSpan delay, CancellationToken cancellationToken)
    {
        if (delay > TimeSpan.Zero)
        {
            return await Delays.PublishAsync(toQueue: true, queue, "", queue, _publisher.Serialize(message), properties, 0, delay, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            // Mandatory: the default exchange routes by queue name, so a return means there is no such queue.
            return await _publisher.PublishAsync("", queue, message, properties, mandatory: true, cancellationToken).ConfigureAwait(false);
        }
        catch (UnroutableMessageException ex)
        {
            throw RabbitMqPublisher.NoSuchQueue(queue, ex);
        }
    }

    /// <summary>The properties a publish with <paramref name="options"/> carries, as the in-memory broker makes them,
    /// and its delay (zero for none; <see cref="PublishOptions.DeliverAt"/> as the time until then).</summary>
    /// <exception cref="NotSupportedException">A delayed publish with a time to live (it would run while the message
    /// waits), or a delay the cascade cannot carry.</exception>
    internal MessageProperties Properties(object message, PublishOptions? options, out TimeSpan delay)
    {
        var now = Time.GetUtcNow().UtcTicks;
        delay = TimeSpan.Zero;
        if (options is null)
        {
            return MessageBroker.DefaultProperties(message, now);
        }

        var properties = MessageBroker.CreateProperties(options, message, now); // validates the options as in memory
        delay = options.DeliverAt is { } at ? TimeSpan.FromTicks(Math.Max(0, at.UtcTicks - now)) : options.Delay ?? TimeSpan.Zero;
        if (delay > TimeSpan.Zero)
        {
            if (options.TimeToLive is { } ttl && !Scheduling.Durations.IsInfinite(ttl))
            {
                throw new NotSupportedException("A delayed publish cannot carry a TimeToLive on RabbitMQ: the message waits in the transport's delay queues, where its expiration would run. Publish it without one (or let the queue's MessageTtl apply). Nothing was published.");
            }

            if (delay > RabbitMqDelays.MaxDelay)
            {
                throw new ArgumentOutOfRangeException(nameof(options), delay, $"The RabbitMQ transport delays a message by at most {RabbitMqDelays.MaxDelay} (2^28 - 1 seconds, about 8.5 years). Nothing was published.");
            }
        }

        return properties;
    }

    /// <inheritdoc/>
    public IPublishTransaction BeginTransaction()
    {
        ThrowIfDisposed();
        return new RabbitMqTransaction(this);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<PublishResult>> PublishBatchAsync<T>(string exchange, string routingKey, IEnumerable<T> messages, Func<T, PublishOptions?>? options = null, CancellationToken cancellationToken = default) =>
        Publishing.Batches.PublishAsync(this, exchange, routingKey, messages, options, cancellationToken);

    /// <inheritdoc/>
    public IConsumer<T> Consume<T>(string queue, Action<ConsumerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ThrowIfDisposed();
        var options = new ConsumerOptions();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        var consumer = Recovery.RunAsync(() => RabbitMqConsumer<T>.StartAsync(_connection, queue, options, Serializer, DeadLetters, Delays), $"consuming queue '{queue}'", CancellationToken.None).GetAwaiter().GetResult();
        Attach(consumer);
        consumer.Disposed = () => _consumers.TryRemove(consumer, out _);
        return consumer;
    }

    /// <inheritdoc/>
    public ISubscription Subscribe<T>(string queue, Func<Delivery<T>, CancellationToken, ValueTask> handler, Action<SubscriptionOptions<T>>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfDisposed();
        var options = new SubscriptionOptions<T>();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Concurrency, 1, "options.Concurrency");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentNullException.ThrowIfNull(options.Retry, "options.Retry");
        var subscription = RabbitMqSubscription<T>.Start(this, queue, handler, options);
        Attach(subscription);
        return subscription;
    }

    /// <summary>Registers a consumer so that disposing the broker stops it; one registered after the stop began is
    /// disposed and refused.</summary>
    private void Attach(IAsyncDisposable consumer)
    {
        lock (_consumers)
        {
            if (!_disposed)
            {
                _consumers[consumer] = 0;
                return;
            }
        }

        consumer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        ThrowIfDisposed();
    }

    internal void Forget(IAsyncDisposable consumer) => _consumers.TryRemove(consumer, out _);

    /// <summary>Stops the broker as <see cref="DisposeAsync"/> does, blocking until it has stopped.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops the broker: publishes fail from now on, subscriptions stop (running handlers get the shutdown
    /// timeout), consumers' channels close (the server requeues what they had not settled), then the connection.</summary>
    /// <returns>A task that completes when the connection is closed.</returns>
    public ValueTask DisposeAsync()
    {
        lock (_consumers)
        {
            _disposed = true;
            _disposing ??= StopAsync();
        }

        return new ValueTask(_disposing);
    }

    private async Task StopAsync()
    {
        Recovery.Stop();
        try
        {
            await Task.WhenAll(_consumers.Keys.Select(c => c.DisposeAsync().AsTask())).ConfigureAwait(false);
            await Delays.DisposeAsync().ConfigureAwait(false);
            await _publisher.DisposeAsync().ConfigureAwait(false);
            await _management.DisposeAsync().ConfigureAwait(false);
            HttpApi?.Dispose();
            Metrics.Dispose();
        }
        finally
        {
            try
            {
                await _connection.CloseAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or OperationCanceledException or IOException)
            {
                // The server or the network closed it first: nothing is left to close.
            }

            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
