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
/// and when the host stops it stops every subscription (running handlers finish within the host's shutdown timeout;
/// the rest return to their queues). The broker stays open for hosted services that stop later; the container
/// disposes it.
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
        AddPart(services, name: null, configure);
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
        AddPart(services, name, configure);
        return services;
    }

    /// <summary>Adds one part of the broker named <paramref name="name"/> (null: the application's), registering the
    /// broker's services with the first part.</summary>
    private static void AddPart(IServiceCollection services, string? name, Action<IServiceProvider, MessageBrokerBuilder> configure)
    {
        var first = !services.Any(d => d.ServiceType == typeof(MessageQueueRegistration)
            && (name is null ? !d.IsKeyedService : d.IsKeyedService && Equals(d.ServiceKey, name)));
        var part = new MessageQueuePart(configure);
        if (name is null)
        {
            services.AddSingleton(part); // fails once the collection is read-only, as any registration does
        }
        else
        {
            services.AddKeyedSingleton(name, part);
        }

        if (!first)
        {
            return;
        }

        services.TryAddSingleton(TimeProvider.System);
        if (name is null)
        {
            services.AddSingleton(sp => new MessageQueueRegistration(null, sp));
            services.AddSingleton(sp => Build(sp, sp.GetRequiredService<MessageQueueRegistration>()));
            services.AddSingleton<IProducer>(sp => sp.GetRequiredService<IMessageBroker>());
            services.AddSingleton(sp => sp.GetRequiredService<IMessageBroker>().Management);
            services.AddSingleton<IHostedService>(sp => new MessageBrokerHost(sp.GetRequiredService<IMessageBroker>, sp.GetRequiredService<MessageQueueRegistration>()));
        }
        else
        {
            services.AddKeyedSingleton(name, (sp, _) => new MessageQueueRegistration(name, sp));
            services.AddKeyedSingleton(name, (sp, key) => Build(sp, sp.GetRequiredKeyedService<MessageQueueRegistration>(key)));
            services.AddKeyedSingleton<IProducer>(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key));
            services.AddKeyedSingleton(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key).Management);
            services.AddSingleton<IHostedService>(sp => new MessageBrokerHost(() => sp.GetRequiredKeyedService<IMessageBroker>(name), sp.GetRequiredKeyedService<MessageQueueRegistration>(name)));
        }
    }

    private static IMessageBroker Build(IServiceProvider services, MessageQueueRegistration registration)
    {
        var builder = new MessageBrokerBuilder();
        if (services.GetService<ILoggerFactory>() is { } loggerFactory)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        builder.UseTimeProvider(services.GetService<TimeProvider>() ?? TimeProvider.System);
        if (services.GetService<System.Diagnostics.Metrics.IMeterFactory>() is { } meterFactory)
        {
            builder.UseMeterFactory(meterFactory); // the host's metrics pipeline owns the meter
        }

        return registration.Build(builder);
    }
}
