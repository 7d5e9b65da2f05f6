using Microsoft.Extensions.Configuration;

namespace MessageQueue.DependencyInjection;

/// <summary>
/// What every <c>AddMessageQueue</c> call for one broker contributed: the callbacks that declare its part of the
/// topology, options and handlers, applied in order to one builder when the host starts (so modules can each add
/// their part, and conflicts between them are reported together). Also the handlers that builder registered.
/// </summary>
internal sealed class MessageQueueRegistration(string? name)
{
    private readonly List<Action<IServiceProvider, MessageBrokerBuilder>> _configure = [];

    /// <summary>The broker's name, or null for the application's broker.</summary>
    internal string? Name { get; } = name;

    /// <summary>The handlers of the built broker (empty until it is built).</summary>
    internal IReadOnlyList<HandlerRegistration> Handlers { get; private set; } = [];

    internal void Add(Action<IServiceProvider, MessageBrokerBuilder> configure) => _configure.Add(configure);

    /// <summary>Applies every callback to a new builder and builds the broker.</summary>
    internal IMessageBroker Build(IServiceProvider services, MessageBrokerBuilder builder)
    {
        builder.Services = services;
        if (services.GetService(typeof(IConfiguration)) is IConfiguration configuration
            && configuration.GetSection(Name is null ? "MessageQueue" : $"MessageQueue:Brokers:{Name}") is var section && section.Exists())
        {
            builder.AddConfiguration(section);
        }

        foreach (var configure in _configure)
        {
            configure(services, builder);
        }

        var broker = builder.Build();
        Handlers = builder.Handlers;
        return broker;
    }
}
