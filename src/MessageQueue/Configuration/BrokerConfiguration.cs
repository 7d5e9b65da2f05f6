using Microsoft.Extensions.Configuration;

namespace MessageQueue.Configuration;

/// <summary>
/// Reads a broker's topology and options from configuration (the <c>MessageQueue</c> section of
/// <c>appsettings.json</c>): <c>Exchanges</c>, <c>Queues</c> and <c>Bindings</c>, <c>Storage</c> and
/// <c>ShutdownTimeout</c>. See <see cref="MessageBrokerBuilder.AddConfiguration"/> for the format and how it merges
/// with code.
/// </summary>
internal static class BrokerConfiguration
{
    private static readonly string[] QueueKeys =
    [
        nameof(QueueOptions.Durable), nameof(QueueOptions.Mode), nameof(QueueOptions.MaxLength), nameof(QueueOptions.MaxLengthBytes),
        nameof(QueueOptions.Overflow), nameof(QueueOptions.MessageTtl), nameof(QueueOptions.DeadLetterExchange),
        nameof(QueueOptions.DeadLetterRoutingKey), nameof(QueueOptions.DeadLetterQueue), nameof(QueueOptions.MaxDeliveryCount),
        nameof(QueueOptions.MaxPriority), nameof(QueueOptions.SingleActiveConsumer), nameof(QueueOptions.AckTimeout),
        nameof(QueueOptions.DeduplicationWindow), nameof(QueueOptions.DeduplicationCapacity), nameof(QueueOptions.Redelivery),
    ];

    internal static void Read(IConfiguration configuration, MessageBrokerBuilder builder, ConfigurationValues values)
    {
        if (configuration is IConfigurationSection root)
        {
            values.CheckKeys(root, "a MessageQueue setting", "Exchanges", "Queues", "Bindings", "Storage", "ShutdownTimeout", "Brokers", "Sqlite", "LiteDB");
        }

        foreach (var exchange in configuration.GetSection("Exchanges").GetChildren())
        {
            ReadExchange(exchange, builder, values);
        }

        foreach (var queue in configuration.GetSection("Queues").GetChildren())
        {
            builder.OverlayQueue(queue.Key, ReadQueue(queue, values));
        }

        foreach (var binding in configuration.GetSection("Bindings").GetChildren())
        {
            ReadBinding(binding, builder, values);
        }

        if (configuration.GetSection("Storage") is { } storage && storage.GetChildren().Any())
        {
            builder.OverlayStorage(ReadStorage(storage, values));
        }

        if (configuration is IConfigurationSection section && values.Duration(section, "ShutdownTimeout") is { } timeout)
        {
            builder.WithShutdownTimeout(timeout);
        }
    }

    private static void ReadExchange(IConfigurationSection exchange, MessageBrokerBuilder builder, ConfigurationValues values)
    {
        values.CheckKeys(exchange, "an exchange setting", "Type", nameof(ExchangeOptions.AlternateExchange));
        if (values.Enum<ExchangeType>(exchange, "Type") is not { } type)
        {
            if (exchange["Type"] is null)
            {
                values.Problems.Add($"{exchange.Path}:Type is missing; it is one of {string.Join(", ", Enum.GetNames<ExchangeType>())}.");
            }

            return;
        }

        var alternate = ConfigurationValues.Text(exchange, nameof(ExchangeOptions.AlternateExchange));
        builder.AddExchange(exchange.Key, type, o => o.AlternateExchange = alternate);
    }

    private static void ReadBinding(IConfigurationSection binding, MessageBrokerBuilder builder, ConfigurationValues values)
    {
        values.CheckKeys(binding, "a binding setting", "Exchange", "Queue", "ToExchange", "RoutingKey");
        var exchange = ConfigurationValues.Text(binding, "Exchange");
        var queue = ConfigurationValues.Text(binding, "Queue");
        var toExchange = ConfigurationValues.Text(binding, "ToExchange");
        var routingKey = binding["RoutingKey"] ?? "";
        if (exchange is null || (queue is null) == (toExchange is null))
        {
            values.Problems.Add($"{binding.Path}: a binding names its Exchange and either a Queue or a ToExchange.");
            return;
        }

        if (queue is not null)
        {
            builder.Bind(exchange, queue, routingKey);
        }
        else
        {
            builder.BindExchange(exchange, toExchange!, routingKey);
        }
    }

    private static Action<QueueOptions> ReadQueue(IConfigurationSection queue, ConfigurationValues values)
    {
        values.CheckKeys(queue, "a queue option", QueueKeys);
        var durable = values.Bool(queue, nameof(QueueOptions.Durable));
        var mode = values.Enum<QueueMode>(queue, nameof(QueueOptions.Mode));
        var maxLength = values.Int(queue, nameof(QueueOptions.MaxLength));
        var maxLengthBytes = values.Long(queue, nameof(QueueOptions.MaxLengthBytes));
        var overflow = values.Enum<OverflowPolicy>(queue, nameof(QueueOptions.Overflow));
        var ttl = values.Duration(queue, nameof(QueueOptions.MessageTtl));
        var dlx = ConfigurationValues.Text(queue, nameof(QueueOptions.DeadLetterExchange));
        var dlxKey = ConfigurationValues.Text(queue, nameof(QueueOptions.DeadLetterRoutingKey));
        var dlq = ConfigurationValues.Text(queue, nameof(QueueOptions.DeadLetterQueue));
        var maxDeliveries = values.Int(queue, nameof(QueueOptions.MaxDeliveryCount));
        var maxPriority = values.Int(queue, nameof(QueueOptions.MaxPriority));
        var single = values.Bool(queue, nameof(QueueOptions.SingleActiveConsumer));
        var ackTimeout = values.Duration(queue, nameof(QueueOptions.AckTimeout));
        var dedupWindow = values.Duration(queue, nameof(QueueOptions.DeduplicationWindow));
        var dedupCapacity = values.Int(queue, nameof(QueueOptions.DeduplicationCapacity));
        var redelivery = queue.GetSection(nameof(QueueOptions.Redelivery)) is var r && r.GetChildren().Any() ? ReadRetry(r, values) : null;
        return o =>
        {
            o.Durable = durable ?? o.Durable;
            o.Mode = mode ?? o.Mode;
            o.MaxLength = maxLength ?? o.MaxLength;
            o.MaxLengthBytes = maxLengthBytes ?? o.MaxLengthBytes;
            o.Overflow = overflow ?? o.Overflow;
            o.MessageTtl = ttl ?? o.MessageTtl;
            o.DeadLetterExchange = dlx ?? o.DeadLetterExchange;
            o.DeadLetterRoutingKey = dlxKey ?? o.DeadLetterRoutingKey;
            o.DeadLetterQueue = dlq ?? o.DeadLetterQueue;
            o.MaxDeliveryCount = maxDeliveries ?? o.MaxDeliveryCount;
            o.MaxPriority = maxPriority ?? o.MaxPriority;
            o.SingleActiveConsumer = single ?? o.SingleActiveConsumer;
            o.AckTimeout = ackTimeout ?? o.AckTimeout;
            o.DeduplicationWindow = dedupWindow ?? o.DeduplicationWindow;
            o.DeduplicationCapacity = dedupCapacity ?? o.DeduplicationCapacity;
            o.Redelivery = redelivery ?? o.Redelivery;
        };
    }

    /// <summary>A retry policy: <c>Kind</c> (None, Immediate, Intervals, Exponential) with <c>MaxRetries</c>,
    /// <c>Intervals</c> (a list of durations), <c>MinInterval</c> and <c>MaxInterval</c> as the kind needs.</summary>
    private static RetryPolicy? ReadRetry(IConfigurationSection retry, ConfigurationValues values)
    {
        values.CheckKeys(retry, "a retry setting", "Kind", "MaxRetries", "Intervals", "MinInterval", "MaxInterval");
        var kind = retry["Kind"];
        try
        {
            switch (kind?.Trim().ToUpperInvariant())
            {
                case "NONE":
                    return RetryPolicy.None;
                case "IMMEDIATE":
                    return values.Int(retry, "MaxRetries") is { } n ? RetryPolicy.Immediate(n) : Missing(retry, values, "MaxRetries");
                case "INTERVALS":
                    var intervals = retry.GetSection("Intervals").GetChildren().Select(c => values.Duration(retry.GetSection("Intervals"), c.Key)).ToList();
                    return intervals.Count == 0 ? Missing(retry, values, "Intervals")
                        : intervals.All(i => i is not null) ? RetryPolicy.Intervals([.. intervals.Select(i => i!.Value)]) : null;
                case "EXPONENTIAL":
                    var max = values.Int(retry, "MaxRetries");
                    var min = values.Duration(retry, "MinInterval");
                    var top = values.Duration(retry, "MaxInterval");
                    return max is null || min is null || top is null
                        ? Missing(retry, values, "MaxRetries, MinInterval and MaxInterval")
                        : RetryPolicy.Exponential(max.Value, min.Value, top.Value);
                default:
                    values.Problems.Add($"{retry.Path}:Kind: '{kind}' is not one of None, Immediate, Intervals, Exponential.");
                    return null;
            }
        }
        catch (ArgumentException ex)
        {
            values.Problems.Add($"{retry.Path}: {ex.Message}");
            return null;
        }
    }

    private static RetryPolicy? Missing(IConfigurationSection retry, ConfigurationValues values, string keys)
    {
        if (!values.Problems.Any(p => p.StartsWith(retry.Path + ":", StringComparison.Ordinal)))
        {
            values.Problems.Add($"{retry.Path}: a {retry["Kind"]} policy needs {keys}.");
        }

        return null;
    }

    private static Action<StorageOptions> ReadStorage(IConfigurationSection storage, ConfigurationValues values)
    {
        values.CheckKeys(storage, "a storage option", nameof(StorageOptions.LazyWindow), nameof(StorageOptions.MaxBatchSize), nameof(StorageOptions.AckDelay));
        return values.Storage(storage);
    }
}
