using MessageQueue.DependencyInjection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MessageQueue;

/// <summary>
/// Registers a broker with dependency injection (ASP.NET Core, worker services). The broker is a singleton,
/// resolvable as <see cref="IMessageBroker"/>, <see cref="IProducer"/> and <see cref="IBrokerManagement"/> (whatever
/// the backend, these are the types to depend on); it
/// logs through the container's <see cref="ILoggerFactory"/> and uses its <see cref="TimeProvider"/> when either is
/// registered. A hosted service builds it when the host starts, so topology errors and store recovery (durable
/// queues) happen at start, not at the first publish; the container disposes it when the host stops.
/// </summary>
public static class MessageQueueServiceCollectionExtensions
{
    /// <summary>Registers the application's broker.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Declares the topology and options on the broker's builder (for example
    /// <c>UseSqlite</c>), after the container's logger factory and clock are applied.</param>
    /// <returns>The services.</returns>
    /// <exception cref="InvalidOperationException">A broker without a name was registered already; use the
    /// keyed overload for more than one.</exception>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, Action<MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        if (services.Any(d => !d.IsKeyedService && d.ServiceType == typeof(IMessageBroker)))
        {
            throw new InvalidOperationException("AddMessageQueue was called twice. One application broker is registered without a name; use AddMessageQueue(name, ...) for isolated brokers.");
        }

        services.AddSingleton(sp => Build(sp, configure));
        services.AddSingleton<IProducer>(sp => sp.GetRequiredService<IMessageBroker>());
        services.AddSingleton(sp => sp.GetRequiredService<IMessageBroker>().Management);
        services.AddSingleton<IHostedService>(sp => new MessageBrokerStarter(sp.GetRequiredService<IMessageBroker>));
        return services;
    }

    /// <summary>Registers an isolated broker under a name (like a RabbitMQ virtual host): resolve it with
    /// <c>[FromKeyedServices(name)]</c> or <c>GetRequiredKeyedService&lt;IProducer&gt;(name)</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="name">The broker's name: not empty, unique among the brokers registered.</param>
    /// <param name="configure">Declares the topology and options on the broker's builder.</param>
    /// <returns>The services.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">A broker with this name was registered already.</exception>
    public static IServiceCollection AddMessageQueue(this IServiceCollection services, string name, Action<MessageBrokerBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        if (services.Any(d => d.IsKeyedService && d.ServiceType == typeof(IMessageBroker) && Equals(d.ServiceKey, name)))
        {
            throw new InvalidOperationException($"A message broker named '{name}' was registered already; each name can be used once.");
        }

        services.AddKeyedSingleton(name, (sp, _) => Build(sp, configure));
        services.AddKeyedSingleton<IProducer>(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key));
        services.AddKeyedSingleton(name, (sp, key) => sp.GetRequiredKeyedService<IMessageBroker>(key).Management);
        services.AddSingleton<IHostedService>(sp => new MessageBrokerStarter(() => sp.GetRequiredKeyedService<IMessageBroker>(name)));
        return services;
    }

    private static IMessageBroker Build(IServiceProvider services, Action<MessageBrokerBuilder> configure)
    {
        var builder = new MessageBrokerBuilder();
        if (services.GetService<ILoggerFactory>() is { } loggerFactory)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        if (services.GetService<TimeProvider>() is { } time)
        {
            builder.UseTimeProvider(time);
        }

        configure(builder);
        return builder.Build();
    }
}
