using MessageQueue.DependencyInjection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MessageQueue;

/// <summary>
/// Registers a broker with dependency injection (ASP.NET Core, worker services). The broker is a singleton,
/// resolvable as <see cref="IMessageBroker"/>, <see cref="IProducer"/> and <see cref="IBrokerManagement"/> (whatever
/// the backend, these are the types to depend on). It logs through the container's <see cref="ILoggerFactory"/> and
/// uses the container's <see cref="TimeProvider"/> (<see cref="TimeProvider.System"/> is registered when none is).
/// A hosted service builds it when the host starts, so topology errors, handler problems and store recovery happen at
/// start, not at the first publish; it starts the handlers (<see cref="MessageBrokerBuilder.AddHandler{TMessage, THandler}"/>),
/// and when the host stops it lets running handlers finish within the host's shutdown timeout, returns the rest to
/// their queues and disposes the broker.
/// </summary>
/// <remarks>
/// <c>AddMessageQueue</c> may be called several times for the same broker (modules): each call adds its part of the
/// topology, options and handlers, applied in order to one builder when the host starts; conflicts between the parts
/// are reported together then.
/// </remarks>
public static class MessageQueueServiceCollectionExtensions
{
    /// <summary>Registers the application's broker, or adds a part to it.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Declares the topology, options and handlers on the broker's builder (for example
    /// <c>UseSqlite</c>), after the container's logger factory and clock are applied.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, Action<MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddMessageQueue((_, builder) => configure(builder));
    }

    /// <summary>Registers the application's broker, or adds a part to it, with the container at hand (for
    /// <c>IConfiguration</c>, options and connection strings).</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Declares the topology, options and handlers, given the container's services.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, Action<IServiceProvider, MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        Registration(services, name: null).Add(configure);
        return services;
    }

    /// <summary>Registers an isolated broker under a name (like a RabbitMQ virtual host), or adds a part to it: resolve
    /// it with <c>[FromKeyedServices(name)]</c> or <c>GetRequiredKeyedService&lt;IProducer&gt;(name)</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="name">The broker's name: not empty.</param>
    /// <param name="configure">Declares the topology, options and handlers on the broker's builder.</param>
    /// <returns>The services.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, string name, Action<MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddMessageQueue(name, (_, builder) => configure(builder));
    }

    /// <summary>Registers an isolated broker under a name, or adds a part to it, with the container at hand.</summary>
    /// <param name="services">The services.</param>
    /// <param name="name">The broker's name: not empty.</param>
    /// <param name="configure">Declares the topology, options and handlers, given the container's services.</param>
    /// <returns>The services.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, string name, Action<IServiceProvider, MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        Registration(services, name).Add(configure);
        return services;
    }

    /// <summary>The registration of the broker named <paramref name="name"/> (null: the application's), made and its
    /// services registered on first use.</summary>
    private static MessageQueueRegistration Registration(IServiceCollection services, string? name)
    {
        var existing = services.FirstOrDefault(d => d.ServiceType == typeof(MessageQueueRegistration)
            && (name is null ? !d.IsKeyedService : d.IsKeyedService && Equals(d.ServiceKey, name)));
        if (existing is not null)
        {
            return (MessageQueueRegistration)(name is null ? existing.ImplementationInstance! : existing.KeyedImplementationInstance!);
        }

        var registration = new MessageQueueRegistration(name);
        services.TryAddSingleton(TimeProvider.System);
        if (name is null)
        {
            services.AddSingleton(registration);
            services.AddSingleton(sp => Build(sp, registration));
            services.AddSingleton<IProducer>(sp => sp.GetRequiredService<IMessageBroker>());
            services.AddSingleton(sp => sp.GetRequiredService<IMessageBroker>().Management);
            services.AddSingleton<IHostedService>(sp => new MessageBrokerHost(sp.GetRequiredService<IMessageBroker>, registration, sp.GetRequiredService<IServiceScopeFactory>()));
        }
        else
        {
            services.AddKeyedSingleton(name, registration);
            services.AddKeyedSingleton(name, (sp, _) => Build(sp, registration));
            services.AddKeyedSingleton<IProducer>(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key));
            services.AddKeyedSingleton(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key).Management);
            services.AddSingleton<IHostedService>(sp => new MessageBrokerHost(() => sp.GetRequiredKeyedService<IMessageBroker>(name), registration, sp.GetRequiredService<IServiceScopeFactory>()));
        }

        return registration;
    }

    private static IMessageBroker Build(IServiceProvider services, MessageQueueRegistration registration)
    {
        var builder = new MessageBrokerBuilder();
        if (services.GetService<ILoggerFactory>() is { } loggerFactory)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        builder.UseTimeProvider(services.GetService<TimeProvider>() ?? TimeProvider.System);
        return registration.Build(services, builder);
    }
}
