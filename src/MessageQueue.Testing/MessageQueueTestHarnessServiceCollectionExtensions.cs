using MessageQueue.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace MessageQueue;

/// <summary>Options of <see cref="MessageQueueTestHarnessServiceCollectionExtensions.AddMessageQueueTestHarness"/>.</summary>
public sealed class MessageQueueTestHarnessOptions
{
    /// <summary>Gets or sets whether durable and lazy queues keep using the configured store (for tests of recovery).</summary>
    /// <value>The default value is <see langword="false"/>: they live in memory and no database is opened.</value>
    public bool KeepStore { get; set; }

    /// <summary>Gets or sets the name of the broker to put under the harness (one registered with
    /// <c>AddMessageQueue(name, ...)</c>); null for the application's broker, or the only named one when the application
    /// registered no unnamed broker. The harness is then also resolvable as a keyed service under that name.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? BrokerName { get; set; }

    /// <summary>Gets or sets when the fake clock starts.</summary>
    /// <value>The default value is 2026-01-01 UTC.</value>
    public DateTimeOffset Start { get; set; } = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
}

/// <summary>Puts the application's broker under a test harness (for a host in a test, for example in
/// <c>WebApplicationFactory</c>'s <c>ConfigureTestServices</c>).</summary>
public static class MessageQueueTestHarnessServiceCollectionExtensions
{
    /// <summary>
    /// Keeps the application's topology and handlers (<c>AddMessageQueue</c>) and adds a harness: the container's
    /// <see cref="TimeProvider"/> becomes a <see cref="FakeTimeProvider"/> (shared by the broker and the application's
    /// own code), durable queues live in memory unless <see cref="MessageQueueTestHarnessOptions.KeepStore"/>, and
    /// <see cref="MessageQueueTestHarness"/> is registered, recording from the broker's first message. Call it after the
    /// application's registrations: a <see cref="TimeProvider"/> registered later would win.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the harness's options.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddMessageQueueTestHarness(this IServiceCollection services, Action<MessageQueueTestHarnessOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new MessageQueueTestHarnessOptions();
        configure?.Invoke(options);
        var time = new FakeTimeProvider(options.Start);
        var observer = new HarnessObserver();
        services.RemoveAll<TimeProvider>();
        services.AddSingleton(time);
        services.AddSingleton<TimeProvider>(time);
        var name = options.BrokerName ?? OnlyNamedBroker(services);
        void Attach(MessageBrokerBuilder mq)
        {
            mq.Observer = observer;
            mq.KeepDurableQueuesInMemory = !options.KeepStore;
        }

        if (name is null)
        {
            services.AddMessageQueue(Attach);
            services.AddSingleton(sp => new MessageQueueTestHarness(sp.GetRequiredService<IMessageBroker>(), time, observer));
        }
        else
        {
            services.AddMessageQueue(name, Attach);
            services.AddKeyedSingleton(name, (sp, key) => new MessageQueueTestHarness(sp.GetRequiredKeyedService<IMessageBroker>(key), time, observer));
            services.AddSingleton(sp => sp.GetRequiredKeyedService<MessageQueueTestHarness>(name));
        }

        return services;
    }

    /// <summary>The name of the only broker registered so far when it is a named one (no unnamed broker): the
    /// application's broker to put under the harness.</summary>
    private static string? OnlyNamedBroker(IServiceCollection services)
    {
        var registrations = services.Where(d => d.ServiceType == typeof(DependencyInjection.MessageQueueRegistration)).ToList();
        return registrations is [{ IsKeyedService: true, ServiceKey: string name }] ? name : null;
    }
}
