using MessageQueue.Configuration;
using Microsoft.Extensions.Configuration;

namespace MessageQueue;

/// <summary>Topology and options from configuration.</summary>
public sealed partial class MessageBrokerBuilder
{
    private readonly List<(string Name, Action<QueueOptions> Apply)> _queueOverlays = [];
    private readonly List<Action<StorageOptions>> _storageOverlays = [];
    private readonly List<string> _configurationProblems = [];

    /// <summary>
    /// Adds the topology and options of a configuration section (with dependency injection, <c>AddMessageQueue</c>
    /// reads the <c>MessageQueue</c> section of the application's configuration, or <c>MessageQueue:Brokers:{name}</c>
    /// for a named broker, by itself):
    /// <code>
    /// "MessageQueue": {
    ///   "Exchanges": { "orders": { "Type": "Topic", "AlternateExchange": "unrouted" } },
    ///   "Queues": {
    ///     "billing": { "Durable": true, "MaxLength": 10000, "Overflow": "RejectPublish", "MessageTtl": "01:00:00",
    ///                  "DeadLetterQueue": "billing.dead",
    ///                  "Redelivery": { "Kind": "Exponential", "MaxRetries": 5, "MinInterval": "00:00:01", "MaxInterval": "00:01:00" } }
    ///   },
    ///   "Bindings": [ { "Exchange": "orders", "Queue": "billing", "RoutingKey": "order.*" } ],
    ///   "Storage": { "LazyWindow": 256, "AckDelay": "00:00:00.005" },
    ///   "ShutdownTimeout": "00:00:30"
    /// }
    /// </code>
    /// Every queue option has its <see cref="QueueOptions"/> name; durations are <c>[d.]hh:mm:ss[.fff]</c> or
    /// <c>Infinite</c>; enums by name. It merges with code: a queue declared in code takes the options configured
    /// for it on top of its own (operations tune limits without a build); a queue only configured is declared;
    /// exchanges and bindings are added as if declared in code. A value that does not parse, or a key that is not an
    /// option, is reported by <see cref="Build"/> with every other problem, naming its configuration path.
    /// </summary>
    /// <param name="configuration">The section (for example <c>configuration.GetSection("MessageQueue")</c>).</param>
    /// <returns>This builder.</returns>
    public MessageBrokerBuilder AddConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        BrokerConfiguration.Read(configuration, this, new ConfigurationValues(_configurationProblems));
        return this;
    }

    /// <summary>Options configured for queue <paramref name="name"/>, applied on top of code's at build.</summary>
    internal void OverlayQueue(string name, Action<QueueOptions> apply) => _queueOverlays.Add((name, apply));

    internal void OverlayStorage(Action<StorageOptions> apply) => _storageOverlays.Add(apply);

    /// <summary>Applies what configuration set to the queues and storage options, and lists its problems.</summary>
    private void ApplyConfiguration(List<string> problems)
    {
        problems.AddRange(_configurationProblems);
        foreach (var (name, apply) in _queueOverlays)
        {
            var declared = false;
            foreach (var (queue, options) in _queues)
            {
                if (string.Equals(queue, name, StringComparison.Ordinal))
                {
                    apply(options);
                    declared = true;
                }
            }

            if (!declared)
            {
                var options = new QueueOptions();
                apply(options);
                _queues.Add((name, options));
            }
        }

        _queueOverlays.Clear(); // applied once, even when Build is called again
        foreach (var apply in _storageOverlays)
        {
            apply(_storageOptions);
        }

        _storageOverlays.Clear();
        try
        {
            _storageOptions.Validate();
        }
        catch (ArgumentOutOfRangeException ex)
        {
            problems.Add($"Storage options: {ex.Message}");
        }
    }
}
