using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace MessageQueue.DependencyInjection;

/// <summary>One <c>AddMessageQueue</c> call's part of a broker: registered as a service of its own per call, so a
/// container has exactly the parts added before it was built (a collection built twice does not share later parts,
/// and a call after the host was built fails as any other registration does).</summary>
internal sealed class MessageQueuePart(Action<IServiceProvider, MessageBrokerBuilder> configure)
{
    internal Action<IServiceProvider, MessageBrokerBuilder> Configure { get; } = configure;
}

/// <summary>
/// A container's broker: the parts every <c>AddMessageQueue</c> call contributed, applied in order to one builder when
/// the host starts (so modules each add their part, and conflicts between them are reported together), and the
/// handlers that builder registered. One per container (a singleton), so containers built from one collection do not
/// share it.
/// </summary>
internal sealed class MessageQueueRegistration(string? name, IServiceProvider services)
{
    /// <summary>The broker's name, or null for the application's broker.</summary>
    internal string? Name { get; } = name;

    /// <summary>The container.</summary>
    internal IServiceProvider Services { get; } = services;

    /// <summary>The handlers of the built broker (empty until it is built).</summary>
    internal IReadOnlyList<HandlerRegistration> Handlers { get; private set; } = [];

    /// <summary>Applies the configuration section and every part to <paramref name="builder"/> and builds the broker.</summary>
    internal IMessageBroker Build(MessageBrokerBuilder builder)
    {
        builder.Services = Services;
        builder.BrokerName = Name ?? "default";
        if (Services.GetService<IConfiguration>() is { } configuration
            && configuration.GetSection(Name is null ? "MessageQueue" : $"MessageQueue:Brokers:{Name}") is var section && section.Exists())
        {
            builder.AddConfiguration(section);
        }

        var parts = Name is null ? Services.GetServices<MessageQueuePart>() : Services.GetKeyedServices<MessageQueuePart>(Name);
        foreach (var part in parts)
        {
            part.Configure(Services, builder);
        }

        var broker = builder.Build();
        Handlers = builder.Handlers;
        return broker;
    }
}
