using System.Collections.Concurrent;
using MessageQueue.Consuming;
using MessageQueue.Management;
using MessageQueue.Publishing;
using MessageQueue.Queues;
using MessageQueue.Routing;

namespace MessageQueue;

/// <summary>
/// An in-process message broker: exchanges route published messages to queues; consumers pull from queues
/// or subscriptions are pushed messages. Build one with <see cref="MessageBrokerBuilder"/>; dispose it to
/// stop delivering, let running handlers finish within the shutdown timeout, and return the rest to their queues.
/// </summary>
public sealed class MessageBroker : IMessageBroker, IAsyncDisposable
{
    private readonly BrokerContext _context;
    private readonly ConcurrentDictionary<IAsyncDisposable, byte> _consumers = new();
    private readonly BrokerManagement _management;
    private volatile bool _disposed;
    private Task? _disposing;

    internal MessageBroker(BrokerContext context, TimeSpan shutdownTimeout)
    {
        _context = context;
        ShutdownTimeout = shutdownTimeout;
        _management = new BrokerManagement(context, this);
    }

    /// <inheritdoc/>
    public IBrokerManagement Management => _management;

    internal TimeSpan ShutdownTimeout { get; }

    internal BrokerContext Context => _context;

    internal TimeProvider Time => _context.Time;

    internal bool IsDisposed => _disposed;

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

        if (!_context.Topology.TryGetExchange(exchange, out var ex))
        {
            throw new TopologyException($"Exchange '{exchange}' does not exist; declare it with AddExchange or Management.DeclareExchangeAsync.");
        }

        return new ValueTask<PublishResult>(Publish(ex, routingKey, message, options));
    }

    /// <inheritdoc/>
    public ValueTask<PublishResult> SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(message);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<PublishResult>(cancellationToken);
        }

        var target = _context.Topology.GetQueue(queue);
        var now = _context.Clock.UtcNowTicks();
        var properties = options is null ? null : CreateProperties(options, message, now);
        var entry = new QueueEntry(message, properties, "", queue, now, properties?.Priority ?? 0);
        var due = options is null ? 0 : DueTicks(options);
        if (!(due == 0 ? target.Enqueue(entry) : target.EnqueueDelayed(entry, due)))
        {
            throw new TopologyException($"Queue '{queue}' was deleted while the message was sent; nothing was enqueued.");
        }

        return new ValueTask<PublishResult>(new PublishResult((object?)properties?.MessageId ?? entry, 1));
    }

    /// <inheritdoc/>
    public IConsumer<T> Consume<T>(string queue, Action<ConsumerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ThrowIfDisposed();
        var options = new ConsumerOptions();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        var target = _context.Topology.GetQueue(queue);
        var core = new ConsumerCore(target, options.Prefetch, options.AckMode == AckMode.Auto);
        var consumer = new PullConsumer<T>(core, this);
        _consumers[consumer] = 0;
        target.AddConsumer(core);
        return consumer;
    }

    /// <inheritdoc/>
    public ISubscription Subscribe<T>(string queue, Func<Delivery<T>, CancellationToken, ValueTask> handler, Action<SubscriptionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(handler);
        ThrowIfDisposed();
        var options = new SubscriptionOptions();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Concurrency, 1, "options.Concurrency");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Prefetch, 1, "options.Prefetch");
        ArgumentNullException.ThrowIfNull(options.Retry, "options.Retry");
        var target = _context.Topology.GetQueue(queue);
        var core = new ConsumerCore(target, Math.Max(options.Prefetch, options.Concurrency), autoAck: false);
        var subscription = new Subscription<T>(core, handler, options, this, _context.Logger);
        _consumers[subscription] = 0;
        target.AddConsumer(core);
        return subscription;
    }

    /// <summary>Stops the broker: publishes fail from now on, no new deliveries start, running handlers get the
    /// shutdown timeout to finish, and every unsettled delivery returns to its queue. Queue contents can still be
    /// read through <see cref="Management"/> afterwards.</summary>
    /// <returns>A task that completes when every consumer has stopped.</returns>
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
        await Task.WhenAll(_consumers.Keys.Select(c => c.DisposeAsync().AsTask())).ConfigureAwait(false);
        _context.Scheduler.Dispose();
    }

    internal void Forget(IAsyncDisposable consumer) => _consumers.TryRemove(consumer, out _);

    internal PublishResult Publish(Exchange exchange, string routingKey, object message, PublishOptions? options)
    {
        var now = _context.Clock.UtcNowTicks();
        var properties = options is null ? null : CreateProperties(options, message, now);
        var collector = RouteCollector.Rent();
        try
        {
            _context.Topology.Route(exchange, routingKey, properties, collector);
            var queues = collector.Queues;
            if (queues.Count == 0)
            {
                return options is { Mandatory: true }
                    ? throw new UnroutableMessageException(exchange.Name, routingKey)
                    : new PublishResult(properties?.MessageId ?? MessageIds.New(), 0);
            }

            // One queue: the entry creates the properties on first read. More: they must share one id.
            properties ??= queues.Count > 1 ? CreateProperties(new PublishOptions(), message, now) : null;
            var due = options is null ? 0 : DueTicks(options);
            var routed = 0;
            QueueEntry? last = null;
            foreach (var queue in queues)
            {
                var entry = new QueueEntry(message, properties, exchange.Name, routingKey, now, properties?.Priority ?? 0);
                if (due == 0 ? queue.Enqueue(entry) : queue.EnqueueDelayed(entry, due))
                {
                    routed++;
                    last = entry;
                }
            }

            if (routed == 0 && options is { Mandatory: true })
            {
                throw new UnroutableMessageException(exchange.Name, routingKey);
            }

            return new PublishResult((object?)properties?.MessageId ?? (object?)last ?? MessageIds.New(), routed);
        }
        finally
        {
            collector.Return();
        }
    }

    /// <summary>When a delayed publish becomes ready (UTC ticks), or 0 for at once.</summary>
    private long DueTicks(PublishOptions options)
    {
        if (options.Delay is null && options.DeliverAt is null)
        {
            return 0;
        }

        var now = _context.Time.GetUtcNow().UtcTicks;
        var due = options.DeliverAt?.UtcTicks ?? now + options.Delay!.Value.Ticks;
        return due > now ? due : 0;
    }

    private static void ValidateDelay(PublishOptions options)
    {
        if (options.Delay is not null && options.DeliverAt is not null)
        {
            throw new ArgumentException("PublishOptions sets both Delay and DeliverAt; set one.", nameof(options));
        }

        if (options.TimeToLive is { } ttl && ttl < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), ttl, "PublishOptions.TimeToLive is negative; use zero for 'deliver now or expire'.");
        }

        if (options.Delay is { } delay && delay < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), delay, "PublishOptions.Delay is negative; use DeliverAt for a point in time.");
        }
    }

    private static MessageProperties CreateProperties(PublishOptions options, object message, long nowTicks)
    {
        ValidateDelay(options);
        if (options.MessageId is { Length: 0 })
        {
            throw new ArgumentException("PublishOptions.MessageId is empty; leave it null to have one generated.", nameof(options));
        }

        return new MessageProperties
        {
            MessageId = options.MessageId ?? MessageIds.New(),
            CorrelationId = options.CorrelationId,
            ReplyTo = options.ReplyTo,
            Headers = options.Headers is { Count: > 0 } headers
                ? HeaderRules.CopyForPublish(headers, nameof(options))
                : MessageProperties.NoHeaders,
            Priority = options.Priority,
            Timestamp = new DateTimeOffset(nowTicks, TimeSpan.Zero),
            ContentType = options.ContentType,
            MessageType = message.GetType().FullName,
            Persistent = options.Persistent,
            Expiration = options.TimeToLive,
        };
    }

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed; nothing can be published or consumed any more.");
        }
    }
}
