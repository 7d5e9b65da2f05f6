using MessageQueue.DependencyInjection;

namespace MessageQueue;

/// <summary>Handlers run by dependency injection.</summary>
public sealed partial class MessageBrokerBuilder
{
    private readonly List<HandlerRegistration> _handlers = [];

    /// <summary>
    /// Runs <typeparamref name="THandler"/> on every message of <paramref name="queue"/>, as a subscription the host
    /// starts and stops (register the broker with <c>services.AddMessageQueue</c>). Each delivery runs in a new
    /// dependency-injection scope, with a new handler from it (registered in the container, or created with its
    /// constructor's dependencies from it); the scope is disposed after the handler, even when it throws. Returning
    /// acks; an exception follows the options' <see cref="SubscriptionOptions.Retry"/>, then dead-letters.
    /// </summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <typeparam name="THandler">The handler.</typeparam>
    /// <param name="queue">The queue, declared on this broker.</param>
    /// <param name="configure">Sets the subscription's options (concurrency, prefetch, retry, ordering key).</param>
    /// <returns>This builder.</returns>
    /// <remarks>Problems (an unknown queue, invalid options, a handler whose dependencies cannot be resolved) are
    /// reported with every other problem when the host starts. <see cref="Build"/> without dependency injection refuses
    /// handlers: use <see cref="IMessageBroker.Subscribe{T}"/> there.</remarks>
    public MessageBrokerBuilder AddHandler<TMessage, THandler>(string queue, Action<SubscriptionOptions<TMessage>>? configure = null)
        where THandler : class, IMessageHandler<TMessage>
    {
        ArgumentNullException.ThrowIfNull(queue);
        _handlers.Add(new HandlerRegistration<TMessage, THandler>(queue, configure));
        return this;
    }

    /// <summary>For the test harness: durable and lazy queues are kept in memory and the store is not opened.</summary>
    internal bool KeepDurableQueuesInMemory { get; set; }

    /// <summary>For the test harness: told of what the built broker does to messages.</summary>
    internal IBrokerObserver? Observer { get; set; }

    /// <summary>The handlers registered, in order.</summary>
    internal IReadOnlyList<HandlerRegistration> Handlers => _handlers;

    /// <summary>The container whose scopes run the handlers; set by <c>AddMessageQueue</c>, null outside dependency
    /// injection.</summary>
    internal IServiceProvider? Services { get; set; }

    /// <summary>Checks every handler: its queue is declared, its options are valid, and (with a container) it can be
    /// created from the container's services.</summary>
    private void ValidateHandlers(List<string> problems, Dictionary<string, QueueOptions> queues)
    {
        foreach (var handler in _handlers)
        {
            if (Services is null)
            {
                problems.Add($"{handler.Describe()} needs dependency injection: register the broker with services.AddMessageQueue, or use IMessageBroker.Subscribe.");
                continue;
            }

            if (!queues.ContainsKey(handler.Queue))
            {
                problems.Add($"{handler.Describe()} is bound to a queue that is not declared; declare it with AddQueue.");
            }

            problems.AddRange(handler.ValidateOptions());
            if (handler.CheckDependencies(Services) is { } problem)
            {
                problems.Add(problem);
            }
        }
    }
}
