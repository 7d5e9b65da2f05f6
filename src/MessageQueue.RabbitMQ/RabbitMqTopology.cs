using System.Globalization;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

internal abstract record TopologyItem;

internal sealed record ExchangeItem(string Name, ExchangeType Type, ExchangeOptions Options) : TopologyItem;

internal sealed record QueueItem(string Name, QueueOptions Options, RabbitMqQueueType Type) : TopologyItem;

internal sealed record BindingItem(string Source, string Destination, bool ToExchange, string RoutingKey, IReadOnlyDictionary<string, object?>? Arguments) : TopologyItem;

/// <summary>
/// How MessageQueue's topology maps onto RabbitMQ (issue 18, point 2): exchanges of the four types (durable, with
/// <c>alternate-exchange</c>), queues with their options as x-arguments, bindings to queues and to exchanges. Options
/// RabbitMQ cannot honour are refused all at once, each naming the queue, the option and why, before anything is
/// declared; a declaration that conflicts with what the server already has (its <c>PRECONDITION_FAILED</c>) becomes a
/// <see cref="TopologyException"/> naming the item, what was asked and what the server has.
/// </summary>
internal static class RabbitMqTopology
{
    /// <summary>RabbitMQ's largest per-queue message TTL: 2^32 - 1 milliseconds (about 49.7 days).</summary>
    internal static readonly TimeSpan MaxTtl = TimeSpan.FromMilliseconds(uint.MaxValue);

    private const string Backend = "RabbitMQ transport";

    /// <summary>The options of <paramref name="item"/> RabbitMQ cannot honour, each a sentence naming the queue, the
    /// option and why (empty when it can honour them all).</summary>
    internal static IEnumerable<string> Refusals(QueueItem item)
    {
        var (name, o, type) = item;
        if (o.Overflow == OverflowPolicy.Block)
        {
            yield return Refusal(name, "Overflow = Block", "RabbitMQ has no overflow policy that makes publishers wait for room; use RejectPublish (publishers get a nack) or DropHead");
        }

        if (o.DeduplicationWindow is not null)
        {
            yield return Refusal(name, "DeduplicationWindow", "RabbitMQ 3.10 does not deduplicate publishes");
        }

        if (o.AckTimeout is not null)
        {
            yield return Refusal(name, "AckTimeout", "RabbitMQ 3.10 has only the server-wide consumer_timeout (it closes the channel), not a per-queue ack timeout");
        }

        if (o.MessageTtl is { } ttl && !Scheduling.Durations.IsInfinite(ttl) && ttl > MaxTtl)
        {
            yield return Refusal(name, $"MessageTtl = {ttl}", $"RabbitMQ's x-message-ttl is at most {MaxTtl} (2^32 - 1 ms)");
        }

        if (o.MaxDeliveryCount is not null && type == RabbitMqQueueType.Classic)
        {
            yield return Refusal(name, "MaxDeliveryCount", "a classic queue has no delivery limit; declare it as a quorum queue (x-delivery-limit)");
        }

        if (type == RabbitMqQueueType.Quorum)
        {
            if (o.MaxPriority is not null)
            {
                yield return Refusal(name, "MaxPriority", "a quorum queue has no priorities in RabbitMQ 3.10; declare it as a classic queue");
            }

            if (o.Mode == QueueMode.Lazy)
            {
                yield return Refusal(name, "Mode = Lazy", "a quorum queue keeps its messages on disk already; lazy mode is for classic queues");
            }

            if (!o.Durable)
            {
                yield return Refusal(name, "Durable = false", "a quorum queue is always durable; set Durable = true or declare it as a classic queue");
            }

            if (o.Overflow == OverflowPolicy.RejectPublishDeadLetter && (o.MaxLength is not null || o.MaxLengthBytes is not null))
            {
                yield return Refusal(name, "Overflow = RejectPublishDeadLetter", "a quorum queue in RabbitMQ 3.10 does not support reject-publish-dlx (it would drop the head instead); use RejectPublish or a classic queue");
            }
        }
    }

    /// <summary>The x-arguments of a queue: its options as RabbitMQ reads them.</summary>
    internal static Dictionary<string, object?> QueueArguments(QueueItem item)
    {
        var (_, o, type) = item;
        var args = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (type == RabbitMqQueueType.Quorum)
        {
            args["x-queue-type"] = "quorum";
            if (o.MaxDeliveryCount is { } limit)
            {
                // RabbitMQ counts failed deliveries: x-delivery-limit = n allows n returns, so n + 1 deliveries. The
                // in-memory MaxDeliveryCount counts deliveries, so one fewer.
                args["x-delivery-limit"] = limit - 1;
            }
        }

        if (o.MessageTtl is { } ttl && !Scheduling.Durations.IsInfinite(ttl))
        {
            args["x-message-ttl"] = (long)ttl.TotalMilliseconds;
        }

        if (o.MaxLength is { } length)
        {
            args["x-max-length"] = length;
        }

        if (o.MaxLengthBytes is { } bytes)
        {
            args["x-max-length-bytes"] = bytes;
        }

        if (o.MaxLength is not null || o.MaxLengthBytes is not null)
        {
            args["x-overflow"] = o.Overflow switch
            {
                OverflowPolicy.RejectPublish => "reject-publish",
                OverflowPolicy.RejectPublishDeadLetter => "reject-publish-dlx",
                _ => "drop-head",
            };
        }

        if (o.DeadLetterQueue is { } deadLetterQueue)
        {
            args["x-dead-letter-exchange"] = ""; // the default exchange routes by queue name
            args["x-dead-letter-routing-key"] = deadLetterQueue;
        }
        else if (o.DeadLetterExchange is { } deadLetterExchange)
        {
            args["x-dead-letter-exchange"] = deadLetterExchange;
            if (o.DeadLetterRoutingKey is { } key)
            {
                args["x-dead-letter-routing-key"] = key;
            }
        }

        if (o.MaxPriority is { } priority)
        {
            args["x-max-priority"] = priority;
        }

        if (o.SingleActiveConsumer)
        {
            args["x-single-active-consumer"] = true;
        }

        if (o.Mode == QueueMode.Lazy)
        {
            args["x-queue-mode"] = "lazy";
        }

        return args;
    }

    /// <summary>Refuses, in one <see cref="TopologyException"/>, every queue option RabbitMQ cannot honour.</summary>
    internal static void ThrowIfRefused(IEnumerable<TopologyItem> items)
    {
        var refusals = items.OfType<QueueItem>().SelectMany(Refusals).ToList();
        if (refusals.Count > 0)
        {
            throw new TopologyException(refusals);
        }
    }

    /// <summary>Declares <paramref name="items"/> in order (exchanges and queues before the bindings that name them),
    /// idempotently: what already exists with the same settings is left as it is. A conflict with what exists stops
    /// the declaration with a <see cref="TopologyException"/> naming the item, what was asked and what the server has.</summary>
    internal static async Task DeclareAsync(IConnection connection, IReadOnlyList<TopologyItem> items, CancellationToken cancellationToken = default)
    {
        ThrowIfRefused(items);
        var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(connection, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var item in items)
            {
                try
                {
                    await DeclareAsync(channel, item, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.PreconditionFailed)
                {
                    throw new TopologyException($"{Describe(item)} conflicts with what the RabbitMQ server already has: {ex.ShutdownReason.ReplyText}. Delete it on the server (or declare it as it is there) and build again.", ex);
                }
            }
        }
        finally
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static Task DeclareAsync(IChannel channel, TopologyItem item, CancellationToken cancellationToken) => item switch
    {
        ExchangeItem e => channel.ExchangeDeclareAsync(e.Name, TypeName(e.Type), durable: true, autoDelete: false,
            arguments: e.Options.AlternateExchange is { } alternate ? new Dictionary<string, object?> { ["alternate-exchange"] = alternate } : null,
            cancellationToken: cancellationToken),
        QueueItem q => channel.QueueDeclareAsync(q.Name, durable: q.Options.Durable || q.Type == RabbitMqQueueType.Quorum, exclusive: false, autoDelete: false,
            arguments: QueueArguments(q), cancellationToken: cancellationToken),
        BindingItem { ToExchange: true } b => channel.ExchangeBindAsync(b.Destination, b.Source, b.RoutingKey, Arguments(b.Arguments), cancellationToken: cancellationToken),
        BindingItem b => channel.QueueBindAsync(b.Destination, b.Source, b.RoutingKey, Arguments(b.Arguments), cancellationToken: cancellationToken),
        _ => throw new ArgumentOutOfRangeException(nameof(item), item, "Not a topology item."),
    };

    /// <summary>A binding's arguments as the server compares them: values in the form message headers travel in
    /// (<see cref="RabbitMqProperties.ToWire"/>), so a headers binding on a Guid or an unsigned integer matches a message
    /// whose header has that value.</summary>
    internal static Dictionary<string, object?>? Arguments(IReadOnlyDictionary<string, object?>? arguments) =>
        arguments?.ToDictionary(a => a.Key, a => a.Key.StartsWith("x-", StringComparison.Ordinal) ? a.Value : RabbitMqProperties.ToWire(a.Value), StringComparer.Ordinal);

    internal static string TypeName(ExchangeType type) => type switch
    {
        ExchangeType.Direct => global::RabbitMQ.Client.ExchangeType.Direct,
        ExchangeType.Fanout => global::RabbitMQ.Client.ExchangeType.Fanout,
        ExchangeType.Topic => global::RabbitMQ.Client.ExchangeType.Topic,
        ExchangeType.Headers => global::RabbitMQ.Client.ExchangeType.Headers,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not an exchange type."),
    };

    private static string Describe(TopologyItem item) => item switch
    {
        ExchangeItem e => $"Exchange '{e.Name}' ({e.Type}{(e.Options.AlternateExchange is { } a ? $", alternate exchange '{a}'" : "")})",
        QueueItem q => $"Queue '{q.Name}' ({q.Type.ToString().ToLowerInvariant()}, durable {(q.Options.Durable || q.Type == RabbitMqQueueType.Quorum).ToString().ToLowerInvariant()}, arguments {FormatArguments(QueueArguments(q))})",
        BindingItem b => $"The binding of {(b.ToExchange ? "exchange" : "queue")} '{b.Destination}' to exchange '{b.Source}' with key '{b.RoutingKey}'",
        _ => item.ToString()!,
    };

    private static string FormatArguments(Dictionary<string, object?> args) =>
        args.Count == 0 ? "none" : string.Join(", ", args.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => string.Create(CultureInfo.InvariantCulture, $"{a.Key}={a.Value}")));

    private static string Refusal(string queue, string option, string why) =>
        $"Queue '{queue}' sets {option}, which the {Backend} cannot honour: {why}.";
}
