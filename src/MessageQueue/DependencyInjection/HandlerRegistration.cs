using System.Reflection;
using Microsoft.Extensions.DependencyInjection;

namespace MessageQueue.DependencyInjection;

/// <summary>
/// A handler registered with <see cref="MessageBrokerBuilder.AddHandler{TMessage, THandler}"/>: the queue, the
/// subscription's options, and how to run the handler in a new dependency-injection scope per delivery.
/// </summary>
internal abstract class HandlerRegistration(string queue, Type messageType, Type handlerType)
{
    internal string Queue { get; } = queue;

    internal Type MessageType { get; } = messageType;

    internal Type HandlerType { get; } = handlerType;

    /// <summary>How the registration is named in problems and logs.</summary>
    internal string Describe() => $"Handler '{HandlerType.Name}' of '{MessageType.Name}' on queue '{Queue}'";

    /// <summary>Lists the problems of the subscription's options.</summary>
    internal abstract IEnumerable<string> ValidateOptions();

    /// <summary>Checks, without creating anything, that the handler can be made from the container: it is registered,
    /// or a public constructor's parameters are all services (or have defaults). Creating it here would run its
    /// constructor, and a handler that depends on the broker (<see cref="IProducer"/>) would re-enter the broker's own
    /// construction. Only the handler's own parameters are checked; the container checks deeper chains
    /// (<c>ValidateOnBuild</c>). Returns the problem, or null (also for a container that cannot tell).</summary>
    internal string? CheckDependencies(IServiceProvider services)
    {
        if (services.GetService<IServiceProviderIsService>() is not { } isService || isService.IsService(HandlerType))
        {
            return null;
        }

        var constructors = HandlerType.GetConstructors(BindingFlags.Public | BindingFlags.Instance);
        if (constructors.Length == 0)
        {
            return $"{Describe()} cannot be created from the services: it has no public constructor.";
        }

        string? missing = null;
        foreach (var constructor in constructors.OrderByDescending(c => c.GetParameters().Length))
        {
            var unresolved = constructor.GetParameters().Where(p => !Resolvable(p, services, isService)).ToList();
            if (unresolved.Count == 0)
            {
                return null;
            }

            missing ??= string.Join(", ", unresolved.Select(p => $"{p.ParameterType.Name} {p.Name}"));
        }

        return $"{Describe()} cannot be created from the services: nothing is registered for {missing} (register it, or give the parameter a default).";
    }

    private static bool Resolvable(ParameterInfo parameter, IServiceProvider services, IServiceProviderIsService isService)
    {
        if (parameter.HasDefaultValue)
        {
            return true;
        }

        if (parameter.GetCustomAttribute<FromKeyedServicesAttribute>() is { } keyed)
        {
            return services.GetService<IServiceProviderIsKeyedService>()?.IsKeyedService(parameter.ParameterType, keyed.Key) ?? true;
        }

        return isService.IsService(parameter.ParameterType);
    }

    /// <summary>Subscribes the handler to its queue: each delivery gets a new scope (disposed after the handler, even
    /// when it throws) and a new handler from it.</summary>
    internal abstract ISubscription Start(IMessageBroker broker, IServiceScopeFactory scopes);

    private protected abstract object Create(IServiceProvider scoped);
}

/// <summary>A handler of <typeparamref name="TMessage"/> implemented by <typeparamref name="THandler"/>.</summary>
internal sealed class HandlerRegistration<TMessage, THandler>(string queue, Action<SubscriptionOptions<TMessage>>? configure)
    : HandlerRegistration(queue, typeof(TMessage), typeof(THandler))
    where THandler : class, IMessageHandler<TMessage>
{
    internal override IEnumerable<string> ValidateOptions()
    {
        var options = new SubscriptionOptions<TMessage>();
        string? failure = null;
        try
        {
            configure?.Invoke(options);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = $"{Describe()}: its options could not be set: {ex.Message}";
        }

        if (failure is not null)
        {
            yield return failure;
            yield break;
        }

        if (options.Concurrency < 1)
        {
            yield return $"{Describe()} has Concurrency {options.Concurrency}; it must be 1 or more.";
        }

        if (options.Prefetch < 1)
        {
            yield return $"{Describe()} has Prefetch {options.Prefetch}; it must be 1 or more.";
        }

        if (options.Retry is null)
        {
            yield return $"{Describe()} has a null Retry policy; use RetryPolicy.None for no retry.";
        }
    }

    internal override ISubscription Start(IMessageBroker broker, IServiceScopeFactory scopes) =>
        broker.Subscribe<TMessage>(Queue, async (delivery, cancellationToken) =>
        {
            var scope = scopes.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                var handler = (THandler)Create(scope.ServiceProvider);
                await handler.HandleAsync(delivery, cancellationToken).ConfigureAwait(false);
            }
        }, configure);

    private protected override object Create(IServiceProvider scoped) =>
        ActivatorUtilities.GetServiceOrCreateInstance<THandler>(scoped);
}
