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
internal sealed partial class MessageBroker : IMessageBroker
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
        context.InFlight.Runners = () => _consumers.Keys.OfType<IRunsHandlers>();
        if (context.Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information))
        {
            var exchanges = context.Topology.Exchanges.Count() - 1; // the default exchange is not counted
            var store = context.Durable is null ? "none" : context.Durable.Store.GetType().Name;
            LogStarted(context.Logger, context.Topology.Queues.Count, exchanges, store);
        }
    }

    /// <summary>Completes when the broker has no work left: nothing ready or due, nothing unacked, no handler running,
    /// no dead letter or store write on its way (see <see cref="InFlight"/>). For the testing package and shutdown.</summary>
    internal Task WhenIdleAsync(CancellationToken cancellationToken = default) => _context.InFlight.WhenIdleAsync(cancellationToken);

    /// <summary>Gets whether a test harness observes this broker (when not, each hook is one null check).</summary>
    internal bool IsObserved => _context.Observer is not null;

    /// <summary>As <see cref="WhenIdleAsync(CancellationToken)"/>, but ready messages count only in queues that have a
    /// consumer (for the test harness).</summary>
    internal Task WhenIdleOrStuckAsync(CancellationToken cancellationToken) => _context.InFlight.WhenIdleAsync(cancellationToken, readyNeedsConsumer: true);

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

        _context.Metrics.CountSent(exchange, "publish");
        if (Diagnostics.BrokerTracing.Source.HasListeners())
        {
            return Traced(null, ex, exchange, routingKey, message, options, cancellationToken);
        }

        var published = Publish(ex, routingKey, message, options, cancellationToken);
        return _context.Observer is { } observer ? Observed(published, observer, exchange, routingKey, message) : published;
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
        _context.Metrics.CountSent(queue, "send");
        if (Diagnostics.BrokerTracing.Source.HasListeners())
        {
            return Traced(target, null, "", queue, message, options, cancellationToken);
        }

        var sent = Send(target, message, options, cancellationToken);
        return _context.Observer is { } observer ? Observed(sent, observer, "", queue, message) : sent;
    }

    private ValueTask<PublishResult> PublishOrSend(Queues.BrokerQueue? queue, Routing.Exchange? exchange, string exchangeName, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken) =>
        _context.Observer is { } observer
            ? Observed(queue is not null ? Send(queue, message, options, cancellationToken) : Publish(exchange!, routingKey, message, options, cancellationToken), observer, exchangeName, routingKey, message)
            : queue is not null ? Send(queue, message, options, cancellationToken) : Publish(exchange!, routingKey, message, options, cancellationToken);

    /// <summary>A publish (to <paramref name="exchange"/>) or send (to <paramref name="queue"/>) while someone listens
    /// to traces (<see cref="Diagnostics.BrokerTracing.Traced"/>).</summary>
    private ValueTask<PublishResult> Traced(Queues.BrokerQueue? queue, Routing.Exchange? exchange, string exchangeName, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken) =>
        Diagnostics.BrokerTracing.Traced(exchangeName, routingKey, send: queue is not null, options, o => PublishOrSend(queue, exchange, exchangeName, routingKey, message, o, cancellationToken));

    /// <summary>Tells the harness's observer of a publish once it succeeded.</summary>
    private static async ValueTask<PublishResult> Observed(ValueTask<PublishResult> publish, IBrokerObserver observer, string exchange, string routingKey, object message)
    {
        var result = await publish.ConfigureAwait(false);
        observer.Published(exchange, routingKey, message, result.MessageId, result.RoutedQueues);
        return result;
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
        Attach(consumer, core);
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
        var target = _context.Topology.GetQueue(queue);
        var core = new ConsumerCore(target, Math.Max(options.Prefetch, options.Concurrency), autoAck: false);
        var subscription = new Subscription<T>(core, handler, options, this, _context.Logger);
        Attach(subscription, core);
        return subscription;
    }

    /// <summary>Registers a consumer so that disposing the broker stops it, then joins it to its queue. Registration
    /// and the disposed check share the lock <see cref="DisposeAsync"/> takes, so a consumer registered after the
    /// broker's stop began is refused, and one registered before is stopped by it (and then refused by its queue,
    /// which it left before joining).</summary>
    private void Attach(IAsyncDisposable consumer, ConsumerCore core)
    {
        lock (_consumers)
        {
            ThrowIfDisposed();
            _consumers[consumer] = 0;
        }

        try
        {
            core.Queue.AddConsumer(core);
        }
        catch
        {
            consumer.DisposeAsync().AsTask().GetAwaiter().GetResult(); // not joined: stops its workers at once
            throw;
        }
    }

    /// <summary>Stops the broker as <see cref="DisposeAsync"/> does, blocking until it has stopped (for containers
    /// and callers that dispose synchronously).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

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
        foreach (var queue in _context.Topology.Queues)
        {
            queue.FailWaiters(new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed while this publish waited for room in a full queue; nothing was enqueued."));
        }

        await Task.WhenAll(_consumers.Keys.Select(c => c.DisposeAsync().AsTask())).ConfigureAwait(false);
        _context.Stop(); // background waits end (a lazy queue's retry of a failed read)
        await Task.WhenAll(_context.Topology.Queues.Where(q => q.IsLazy).Select(q => q.LoaderTask)).ConfigureAwait(false);
        _context.Durable?.Dispose(); // writes what is queued (acks, counts) and closes the store
        _context.Scheduler.Dispose();
        _context.Metrics.Dispose();
        LogStopped(_context.Logger);
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 40, EventName = "BrokerStarted", Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Message broker started: {Queues} queues, {Exchanges} exchanges, store {Store}")]
    private static partial void LogStarted(Microsoft.Extensions.Logging.ILogger logger, int queues, int exchanges, string store);

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 41, EventName = "BrokerStopped", Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Message broker stopped")]
    private static partial void LogStopped(Microsoft.Extensions.Logging.ILogger logger);

    /// <summary>Stops every push subscription as disposing it would, but gives up waiting for running handlers when
    /// <paramref name="giveUp"/> is cancelled (a host's shutdown timeout). The broker stays open: publishing still
    /// works, and pull consumers are left to their owners.</summary>
    internal Task StopSubscriptionsAsync(CancellationToken giveUp) =>
        Task.WhenAll(_consumers.Keys.OfType<IStopsGracefully>().Select(s => s.StopAsync(giveUp)));

    internal void Forget(IAsyncDisposable consumer) => _consumers.TryRemove(consumer, out _);

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed; nothing can be published or consumed any more.");
        }
    }
}
