using MessageQueue.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MessageQueue;

/// <summary>
/// Declares the topology of a broker (exchanges, queues, bindings) and builds it. <see cref="Build"/> checks
/// everything and reports every problem at once in one <see cref="TopologyException"/>.
/// </summary>
public sealed partial class MessageBrokerBuilder
{
    private readonly List<(string Name, ExchangeType Type, ExchangeOptions Options)> _exchanges = [];
    private readonly List<(string Name, QueueOptions Options)> _queues = [];
    private readonly List<(string Source, string Destination, bool ToExchange, string RoutingKey, IReadOnlyDictionary<string, object?>? Arguments)> _bindings = [];
    private TimeProvider _time = TimeProvider.System;
    private ILoggerFactory _loggerFactory = NullLoggerFactory.Instance;
    private System.Diagnostics.Metrics.IMeterFactory? _meterFactory;

    /// <summary>The broker's name in its measurements (<c>messagequeue.broker</c>): its <c>AddMessageQueue</c> name, or
    /// <c>default</c>.</summary>
    internal string BrokerName { get; set; } = "default";
    private StorageOptions _storageOptions = new();
    private TimeSpan _shutdownTimeout = TimeSpan.FromSeconds(30);
    private Func<IMessageStore>? _store;
    private IMessageSerializer _serializer = new JsonMessageSerializer();

    /// <summary>Declares an exchange.</summary>
    /// <param name="name">The exchange name: 1-255 printable characters.</param>
    /// <param name="type">The exchange type.</param>
    /// <param name="configure">Sets the exchange's options.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder AddExchange(string name, ExchangeType type, Action<ExchangeOptions>? configure = null)
    {
        var options = new ExchangeOptions();
        configure?.Invoke(options);
        _exchanges.Add((name, type, options));
        return this;
    }

    /// <summary>Declares a queue.</summary>
    /// <param name="name">The queue name: 1-255 printable characters.</param>
    /// <param name="configure">Sets the queue's options.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder AddQueue(string name, Action<QueueOptions>? configure = null)
    {
        var options = new QueueOptions();
        configure?.Invoke(options);
        _queues.Add((name, options));
        return this;
    }

    /// <summary>Binds a queue to an exchange.</summary>
    /// <param name="exchange">The source exchange.</param>
    /// <param name="queue">The destination queue.</param>
    /// <param name="routingKey">The binding key (a pattern for topic exchanges).</param>
    /// <param name="arguments">Binding arguments (headers exchanges match on them).</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder Bind(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null)
    {
        _bindings.Add((exchange, queue, false, routingKey, arguments));
        return this;
    }

    /// <summary>Binds an exchange to another exchange. Cycles are allowed: routing visits each exchange once.</summary>
    /// <param name="source">The source exchange.</param>
    /// <param name="destination">The destination exchange.</param>
    /// <param name="routingKey">The binding key.</param>
    /// <param name="arguments">Binding arguments.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder BindExchange(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null)
    {
        _bindings.Add((source, destination, true, routingKey, arguments));
        return this;
    }

    /// <summary>Sets the clock for delays, redeliveries, ack timeouts and timestamps (tests pass a manual one).</summary>
    /// <param name="timeProvider">The clock.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder UseTimeProvider(TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _time = timeProvider;
        return this;
    }

    /// <summary>Sets where the broker logs.</summary>
    /// <param name="loggerFactory">The logger factory.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder UseLoggerFactory(ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _loggerFactory = loggerFactory;
        return this;
    }

    /// <summary>Creates the broker's <c>MessageQueue</c> meter through <paramref name="meterFactory"/> (as
    /// <c>AddMessageQueue</c> does with the container's), so that the application's metrics pipeline owns it; without
    /// one the broker makes a meter of its own, which listeners (OpenTelemetry, <c>dotnet-counters</c>) see as well.</summary>
    /// <param name="meterFactory">The meter factory.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder UseMeterFactory(System.Diagnostics.Metrics.IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meterFactory = meterFactory;
        return this;
    }

    /// <summary>Sets how long disposing the broker waits for running handlers before cancelling them.</summary>
    /// <param name="timeout">The timeout; the default is 30 seconds. <see cref="Timeout.InfiniteTimeSpan"/> (or
    /// <see cref="TimeSpan.MaxValue"/>) waits for as long as the handlers take.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder WithShutdownTimeout(TimeSpan timeout)
    {
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
        }

        _shutdownTimeout = timeout;
        return this;
    }

    /// <summary>Gives the broker a message store for its durable and lazy queues. The store is opened, and its
    /// messages recovered into their queues, by <see cref="Build"/>; the broker owns it and disposes it.</summary>
    /// <param name="store">Creates the store (called once, by <see cref="Build"/>).</param>
    /// <param name="options">How the broker uses the store; the defaults when null.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public MessageBrokerBuilder UseStore(Func<IMessageStore> store, StorageOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        options?.Validate();
        _store = store;
        _storageOptions = options ?? new StorageOptions();
        return this;
    }

    /// <summary>Sets how bodies are serialized where messages leave memory (the store).</summary>
    /// <param name="serializer">The serializer; the default is <see cref="JsonMessageSerializer"/>.</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder UseSerializer(IMessageSerializer serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        _serializer = serializer;
        return this;
    }

    /// <summary>Gets the store writer the last <see cref="Build"/> started (for tests: a <see cref="Build"/> that
    /// fails must have stopped it).</summary>
    internal Storage.DurableLog? LastDurableLog { get; private set; }

    /// <summary>Checks the whole topology and builds the broker. A build that fails releases everything it opened
    /// (the store, its writer thread, the timer), so it can be called again, for example once the store is repaired.</summary>
    /// <returns>The broker.</returns>
    /// <exception cref="TopologyException">Something is invalid; <see cref="TopologyException.Problems"/> lists every problem.</exception>
    /// <exception cref="MessageStoreException">The store cannot be opened, or what it holds cannot be read; the message
    /// names the store (and the message that cannot be read).</exception>
    public IMessageBroker Build() => Transport is { } transport && !KeepDurableQueuesInMemory && Observer is null ? BuildWithTransport(transport) : BuildBroker(); // a test harness stays in memory

    /// <summary>Builds the in-process broker (see <see cref="Build"/>).</summary>
    internal MessageBroker BuildBroker()
    {
        var problems = Validate();
        if (problems.Count > 0)
        {
            throw new TopologyException(problems);
        }

        var context = new BrokerContext(_time, _loggerFactory) { Observer = Observer, KeepsDurableInMemory = KeepDurableQueuesInMemory };
        context.Metrics = new Diagnostics.BrokerMetrics(_meterFactory, context.Topology, BrokerName);
        IMessageStore? opened = null;
        try
        {
            var stored = OpenStore(context, ref opened);
            DeclareTopology(context.Topology);
            if (stored is not null)
            {
                Storage.Recovery.Run(context, stored);
                context.Durable!.Barrier().GetAwaiter().GetResult(); // what recovery wrote (dead letters, renumbered rows) is in place
            }

            return new MessageBroker(context, _shutdownTimeout);
        }
        catch (Exception ex)
        {
            Release(context, opened, ex);
            throw;
        }
    }

    /// <summary>Opens the store, if there is one, and starts its writer. Returns what the store holds (null without a
    /// store); <paramref name="opened"/> is the store, to be released if the build fails after this.</summary>
    private StoreContents? OpenStore(BrokerContext context, ref IMessageStore? opened)
    {
        if (_store is null || KeepDurableQueuesInMemory)
        {
            return null;
        }

        var store = _store() ?? throw new InvalidOperationException("UseStore's factory returned null.");
        StoreContents stored;
        try
        {
            stored = store.Open();
        }
        catch
        {
            store.Dispose();
            throw;
        }

        opened = store;
        context.Durable = new Storage.DurableLog(store, _serializer, _storageOptions, context.Logger, stored.MaxId, _time);
        context.Durable.Applied = context.InFlight.Signal;
        context.Durable.Metrics = context.Metrics;
        LastDurableLog = context.Durable;
        return stored;
    }

    /// <summary>Declares the validated exchanges, queues and bindings.</summary>
    private void DeclareTopology(Routing.Topology topology)
    {
        foreach (var (name, type, options) in _exchanges)
        {
            topology.DeclareExchange(name, type, options.Clone(), checkReferences: false);
        }

        foreach (var (name, options) in _queues)
        {
            topology.DeclareQueue(name, options.Clone(), checkReferences: false);
        }

        foreach (var (source, destination, toExchange, routingKey, arguments) in _bindings)
        {
            topology.Bind(source, toExchange ? null : destination, toExchange ? destination : null, routingKey, arguments);
        }
    }

    /// <summary>Releases what a failed <see cref="Build"/> opened, so nothing outlives it: the store writer (which
    /// stops its thread and closes the store), or the store alone when the writer was not started, and the
    /// scheduler's timer. A failure to release is logged; the build's own exception is the one thrown.</summary>
    private static void Release(BrokerContext context, IMessageStore? opened, Exception buildFailure)
    {
        try
        {
            if (context.Durable is { } log)
            {
                log.Dispose();
            }
            else
            {
                opened?.Dispose();
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogReleaseFailed(context.Logger, buildFailure.GetType().Name, ex);
        }
        finally
        {
            context.Scheduler.Dispose();
            context.Metrics.Dispose(); // a failed build reports nothing
        }
    }

    private List<string> Validate()
    {
        var problems = new List<string>();
        ApplyConfiguration(problems);
        var exchanges = ValidateExchanges(problems);
        var queues = ValidateQueues(problems);
        ValidateReferences(problems, exchanges, queues);
        ValidateBindings(problems, exchanges, queues);
        ValidateHandlers(problems, queues);
        return problems;
    }

    /// <summary>Checks the exchanges' names and repeated declarations; returns them by name.</summary>
    private Dictionary<string, (ExchangeType Type, ExchangeOptions Options)> ValidateExchanges(List<string> problems)
    {
        var exchanges = new Dictionary<string, (ExchangeType Type, ExchangeOptions Options)>(StringComparer.Ordinal);
        foreach (var (name, type, options) in _exchanges)
        {
            if (NameRules.Check(name, "exchange") is { } problem)
            {
                problems.Add(problem);
            }
            else if (exchanges.TryGetValue(name, out var earlier))
            {
                if (earlier.Type != type || !earlier.Options.IsEquivalentTo(options))
                {
                    problems.Add($"Exchange '{name}' is declared twice in different ways ({earlier.Type} and {type}, or different options); declare it once.");
                }
            }
            else
            {
                exchanges[name] = (type, options);
            }
        }

        return exchanges;
    }

    /// <summary>Checks the queues' names, options and repeated declarations; returns them by name.</summary>
    private Dictionary<string, QueueOptions> ValidateQueues(List<string> problems)
    {
        var queues = new Dictionary<string, QueueOptions>(StringComparer.Ordinal);
        foreach (var (name, options) in _queues)
        {
            if (NameRules.Check(name, "queue") is { } problem)
            {
                problems.Add(problem);
                continue;
            }

            var backend = KeepDurableQueuesInMemory ? Backend.InMemoryForTests : Transport is { } t && Observer is null ? t.Backend : _store is null ? Backend.InMemory : Backend.Store;
            problems.AddRange(options.Validate(name, backend));

            if (queues.TryGetValue(name, out var earlier))
            {
                if (!earlier.IsEquivalentTo(options))
                {
                    problems.Add($"Queue '{name}' is declared twice with different options; declare it once.");
                }
            }
            else
            {
                queues[name] = options;
            }
        }

        return queues;
    }

    /// <summary>Checks that alternate exchanges and dead-letter targets are declared (the whole topology is in view at
    /// Build(), so a missing one is a typo; at run time RabbitMQ's leniency applies).</summary>
    private static void ValidateReferences(List<string> problems, Dictionary<string, (ExchangeType Type, ExchangeOptions Options)> exchanges, Dictionary<string, QueueOptions> queues)
    {
        foreach (var (name, (_, options)) in exchanges)
        {
            if (options.AlternateExchange is { } ae && !exchanges.ContainsKey(ae))
            {
                problems.Add($"Exchange '{name}' names alternate exchange '{ae}', which is not declared.");
            }
        }

        foreach (var (name, options) in queues)
        {
            if (options.DeadLetterExchange is { Length: > 0 } dlx && !exchanges.ContainsKey(dlx))
            {
                problems.Add($"Queue '{name}' names dead-letter exchange '{dlx}', which is not declared.");
            }

            if (options.DeadLetterQueue is { } dlq && !queues.ContainsKey(dlq))
            {
                problems.Add($"Queue '{name}' names dead-letter queue '{dlq}', which is not declared.");
            }
        }
    }

    /// <summary>Checks each binding's routing key, source, arguments and destination.</summary>
    private void ValidateBindings(List<string> problems, Dictionary<string, (ExchangeType Type, ExchangeOptions Options)> exchanges, Dictionary<string, QueueOptions> queues)
    {
        foreach (var (source, destination, toExchange, routingKey, arguments) in _bindings)
        {
            var what = $"Binding '{source}' -> {(toExchange ? "exchange" : "queue")} '{destination}'";
            if (routingKey is null || routingKey.Length > NameRules.MaxLength)
            {
                problems.Add($"{what} has a routing key that is null or longer than {NameRules.MaxLength} characters.");
            }

            if (string.IsNullOrEmpty(source))
            {
                problems.Add($"{what}: the default exchange '' cannot have bindings; every queue is already bound to it by name.");
            }
            else if (!exchanges.TryGetValue(source, out var src))
            {
                problems.Add($"{what}: source exchange '{source}' is not declared.");
            }
            else if (Exchange.Create(source, src.Type, src.Options).CheckBinding(routingKey ?? "", arguments) is { } bindingProblem)
            {
                problems.Add(bindingProblem);
            }

            if (destination is null || (toExchange ? !exchanges.ContainsKey(destination) : !queues.ContainsKey(destination)))
            {
                problems.Add($"{what}: destination {(toExchange ? "exchange" : "queue")} '{destination}' is not declared.");
            }
        }
    }

    [LoggerMessage(EventId = 26, EventName = "BuildReleaseFailed", Level = LogLevel.Error, Message = "Build failed ({Failure}), and releasing what it had opened failed too")]
    private static partial void LogReleaseFailed(ILogger logger, string failure, Exception exception);
}
