using MessageQueue.Health;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MessageQueue;

/// <summary>Adds the broker's health check (<c>services.AddHealthChecks().AddMessageQueue()</c>).</summary>
public static class MessageQueueHealthChecksBuilderExtensions
{
    /// <summary>Checks the broker registered with <c>AddMessageQueue</c>: <c>Unhealthy</c> when it stopped or its
    /// store fails, <c>Degraded</c> when a queue nears its length limit or its head message is too old (see
    /// <paramref name="configure"/>).</summary>
    /// <param name="builder">The health checks.</param>
    /// <param name="configure">Sets when the broker is degraded.</param>
    /// <param name="brokerName">The name of a broker registered with <c>AddMessageQueue(name, ...)</c>; null for the
    /// application's broker.</param>
    /// <param name="name">The check's name.</param>
    /// <param name="tags">The check's tags (to filter health endpoints).</param>
    /// <returns>The health checks.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public static IHealthChecksBuilder AddMessageQueue(this IHealthChecksBuilder builder, Action<MessageQueueHealthCheckOptions>? configure = null, string? brokerName = null, string name = "messagequeue", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var options = new MessageQueueHealthCheckOptions();
        configure?.Invoke(options);
        if (options.QueueFullShare is < 0 or > 1 || double.IsNaN(options.QueueFullShare))
        {
            throw new ArgumentOutOfRangeException(nameof(configure), options.QueueFullShare, "QueueFullShare must be between 0 and 1.");
        }

        if (options.MaxHeadMessageAge is { } age && age <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(configure), age, "MaxHeadMessageAge must be positive.");
        }

        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new MessageQueueHealthCheck(
                brokerName is null ? sp.GetRequiredService<IMessageBroker> : () => sp.GetRequiredKeyedService<IMessageBroker>(brokerName),
                options,
                sp.GetService<TimeProvider>() ?? TimeProvider.System),
            failureStatus: HealthStatus.Unhealthy,
            tags));
    }
}
