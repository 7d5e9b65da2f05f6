using System.Collections;
using System.Collections.Concurrent;
using System.Numerics;
using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Delayed delivery on RabbitMQ without a plugin (issue 19, point 1), a binary cascade as NServiceBus builds it. Level
/// n (0 to 27) is a topic exchange and a quorum queue whose messages live 2^n seconds and are then dead-lettered, at
/// least once, to level n - 1 (level 0: to the delivery exchange). A delayed message's routing key carries its delay in
/// seconds as 28 bits, highest first, then <c>q</c> and a queue's name or <c>x</c> and an exchange's name; each level's
/// exchange routes it into its queue when its bit is 1 and on to the next level when it is 0. The delivery exchange
/// routes <c>q</c> keys to the queue they name (each queue a delay reaches is bound once, by its exact name) and
/// <c>x</c> keys to a forward queue that the transport consumes (<see cref="RabbitMqForwarder"/>): it republishes the
/// message to its exchange with its own routing key, confirmed before the ack.
/// </summary>
/// <remarks>A delay is whole seconds (a fraction rounds up), at most 2^28 - 1 seconds (about 8.5 years). It holds no
/// worker, and survives a restart of the server: the levels are durable quorum queues, dead-lettering between them is
/// at-least-once, and persistent messages stay persistent. While a message waits its expiration is not set (it would
/// run in the levels); the cascade's traces (its <c>x-death</c> entries, the original exchange and routing key, the
/// deliveries before) are removed when the message is read (<see cref="RabbitMqProperties.FromAmqp"/>).</remarks>
internal sealed class RabbitMqDelays(RabbitMqBroker broker) : IAsyncDisposable
{
    internal const int Levels = 28;
    internal const string DeliveryExchange = "mq.delay.deliver";
    internal const string ForwardQueue = "mq.delay.forward";
    internal const string ExchangeHeader = "x-mq-delay-exchange";
    internal const string RoutingKeyHeader = "x-mq-delay-routing-key";
    internal const string DeliveryCountHeader = "x-mq-delivery-count";
    private const string CarbonCopyHeader = "CC";
    private const string LevelPrefix = "mq.delay.l";
    private const int KeyPrefixLength = (2 * Levels) + 2; // the bits with their dots, then "q." or "x."
    private const int MaxKey = 255;

    /// <summary>The longest delay: 2^28 - 1 seconds (about 8.5 years).</summary>
    internal static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds((1L << Levels) - 1);

    private readonly SemaphoreSlim _declaring = new(1, 1);
    private readonly ConcurrentDictionary<string, byte> _bound = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _exchanges = new(StringComparer.Ordinal);
    private volatile bool _declared;
    private RabbitMqForwarder? _forwarder;

    /// <summary>The name of level <paramref name="level"/>'s exchange and queue.</summary>
    internal static string Level(int level) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{LevelPrefix}{level:D2}");

    /// <summary>Whether <paramref name="queue"/> is one of the cascade's levels.</summary>
    internal static bool IsLevel(string? queue) => queue is not null && queue.StartsWith(LevelPrefix, StringComparison.Ordinal);

    /// <summary>A delay in whole seconds, a fraction rounded up.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The delay is longer than <see cref="MaxDelay"/>.</exception>
    internal static long Seconds(TimeSpan delay)
    {
        if (delay > MaxDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(delay), delay, $"The RabbitMQ transport delays a message by at most {MaxDelay} (2^28 - 1 seconds, about 8.5 years).");
        }

        return (delay.Ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond;
    }

    /// <summary>The level exchange a message delayed by <paramref name="seconds"/> starts at, and its routing key.</summary>
    internal static (string Exchange, string RoutingKey) Route(long seconds, bool toQueue, string destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seconds, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(seconds, (1L << Levels) - 1);
        var key = string.Create(KeyPrefixLength + destination.Length, (seconds, toQueue, destination), static (span, state) =>
        {
            var i = 0;
            for (var level = Levels - 1; level >= 0; level--)
            {
                span[i++] = ((state.seconds >> level) & 1) == 1 ? '1' : '0';
                span[i++] = '.';
            }

            span[i++] = state.toQueue ? 'q' : 'x';
            span[i++] = '.';
            state.destination.AsSpan().CopyTo(span[i..]);
        });
        return (Level(63 - BitOperations.LeadingZeroCount((ulong)seconds)), key);
    }

    /// <summary>Refuses a destination the cascade cannot carry: a routing key is at most 255 bytes, and a word that
    /// is <c>*</c> or <c>#</c> would be a wildcard in the delivery exchange's binding.</summary>
    internal static void ThrowIfNotDelayable(string destination, bool isQueue)
    {
        var what = isQueue ? "queue" : "exchange";
        if (Encoding.UTF8.GetByteCount(destination) > MaxKey - KeyPrefixLength)
        {
            throw new NotSupportedException($"The RabbitMQ transport cannot delay a message to {what} '{destination}': its name is over {MaxKey - KeyPrefixLength} bytes, and the delay's routing key carries it with 58 bytes of delay (at most 255 in all).");
        }

        if (destination.Split('.').Any(w => w is "*" or "#"))
        {
            throw new NotSupportedException($"The RabbitMQ transport cannot delay a message to {what} '{destination}': a word of its name is '*' or '#', which a topic binding reads as a wildcard.");
        }
    }

    private static string Stars(int count) => string.Concat(Enumerable.Repeat("*.", count));

    /// <summary>Publishes a message to arrive at <paramref name="destination"/> (a queue, or an exchange with the
    /// message's <paramref name="routingKey"/>) after <paramref name="delay"/>, and waits for the confirm. The message
    /// keeps <paramref name="exchange"/> and <paramref name="routingKey"/> as those it was published with;
    /// <paramref name="deliveredBefore"/> (the deliveries it had, for a nack or a retry) is carried into its next
    /// <see cref="Delivery{T}.DeliveryCount"/>.</summary>
    internal async ValueTask<PublishResult> PublishAsync(bool toQueue, string destination, string exchange, string routingKey, ReadOnlyMemory<byte> body, MessageProperties properties, int deliveredBefore, TimeSpan delay, CancellationToken cancellationToken)
    {
        var (levelExchange, key, amqp) = await PrepareAsync(toQueue, destination, exchange, routingKey, properties, deliveredBefore, delay, cancellationToken).ConfigureAwait(false);
        try
        {
            return await broker.Publisher.PublishAsync(levelExchange, key, body, amqp, properties.MessageId, mandatory: true, cancellationToken).ConfigureAwait(false);
        }
        catch (UnroutableMessageException ex)
        {
            _declared = false; // someone deleted a level: declare them again next time
            throw new MessageQueueException($"The RabbitMQ transport's delay queues are missing on the server (level exchange '{levelExchange}' routed the message nowhere); nothing was delayed. Try again: they are declared anew.", ex);
        }
    }

    /// <summary>Where a delayed publish goes and its AMQP properties (for a publish, or for a transaction to stage):
    /// the cascade is declared and the destination queue bound first.</summary>
    internal async ValueTask<(string Exchange, string RoutingKey, BasicProperties Amqp)> PrepareAsync(bool toQueue, string destination, string exchange, string routingKey, MessageProperties properties, int deliveredBefore, TimeSpan delay, CancellationToken cancellationToken)
    {
        ThrowIfNotDelayable(destination, toQueue);
        var seconds = Seconds(delay);
        var amqp = RabbitMqProperties.ToAmqp(properties);
        amqp.Expiration = null; // it would run in the levels; see the remarks
        var headers = amqp.Headers is { } h ? new Dictionary<string, object?>(h, StringComparer.Ordinal) : new Dictionary<string, object?>(StringComparer.Ordinal);
        headers[ExchangeHeader] = exchange;
        headers[RoutingKeyHeader] = routingKey;
        if (!headers.ContainsKey(CarbonCopyHeader))
        {
            // The cascade's routing key stays on the message; with its own key as a CC key too, RabbitMQ dead-letters it
            // by that key as well when its queue dead-letters it (a CC key this short matches no binding of the cascade).
            headers[CarbonCopyHeader] = new List<object?> { routingKey };
        }
        if (deliveredBefore > 0)
        {
            headers[DeliveryCountHeader] = (long)deliveredBefore;
        }

        amqp.Headers = headers;
        await EnsureDeclaredAsync(cancellationToken).ConfigureAwait(false);
        if (toQueue)
        {
            await EnsureBoundAsync(destination, cancellationToken).ConfigureAwait(false);
        }
        else if (!_exchanges.ContainsKey(destination))
        {
            // Checked now, as an undelayed publish is: when due, the forwarder could only drop it.
            if (!await broker.ManagementImpl.ExistsAsync(destination, exchange: true, cancellationToken).ConfigureAwait(false))
            {
                throw new TopologyException($"Exchange '{destination}' does not exist on the RabbitMQ server; declare it first. Nothing was delayed.");
            }

            _exchanges[destination] = 0;
        }

        var (levelExchange, key) = Route(seconds, toQueue, destination);
        return (levelExchange, key, amqp);
    }

    /// <summary>Declares the cascade on the server, once per broker (idempotent: another broker may have declared it),
    /// and starts forwarding delayed publishes to exchanges.</summary>
    internal async ValueTask EnsureDeclaredAsync(CancellationToken cancellationToken)
    {
        if (_declared)
        {
            return;
        }

        await _declaring.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_declared)
            {
                return;
            }

            await broker.ManagementImpl.WithChannelAsync(channel => DeclareAsync(channel, cancellationToken), cancellationToken).ConfigureAwait(false);
            _declared = true;
            _forwarder ??= await RabbitMqForwarder.StartAsync(broker, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.PreconditionFailed)
        {
            throw new TopologyException($"The RabbitMQ transport's delay queues ('{LevelPrefix}NN', '{DeliveryExchange}', '{ForwardQueue}') conflict with what the server has: {ex.ShutdownReason.ReplyText}. Delete them on the server (no delayed message must be waiting in them) and try again.", ex);
        }
        finally
        {
            _declaring.Release();
        }
    }

    /// <summary>Starts forwarding when the cascade exists on the server already (declared by an earlier run): delayed
    /// publishes to exchanges then reach their exchange even if this run never delays anything.</summary>
    internal async Task StartIfDeclaredAsync()
    {
        if (await broker.ManagementImpl.ExistsAsync(ForwardQueue, exchange: false, CancellationToken.None).ConfigureAwait(false))
        {
            await EnsureDeclaredAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static async Task DeclareAsync(IChannel channel, CancellationToken cancellationToken)
    {
        for (var level = Levels - 1; level >= 0; level--)
        {
            var name = Level(level);
            await channel.ExchangeDeclareAsync(name, global::RabbitMQ.Client.ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-message-ttl"] = (1L << level) * 1000,
                ["x-overflow"] = "reject-publish", // at-least-once dead-lettering needs it
                ["x-dead-letter-strategy"] = "at-least-once",
                ["x-dead-letter-exchange"] = level > 0 ? Level(level - 1) : DeliveryExchange,
            }, cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueBindAsync(name, name, Stars(Levels - 1 - level) + "1.#", cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        await channel.ExchangeDeclareAsync(DeliveryExchange, global::RabbitMQ.Client.ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        for (var level = Levels - 1; level >= 1; level--)
        {
            await channel.ExchangeBindAsync(Level(level - 1), Level(level), Stars(Levels - 1 - level) + "0.#", cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        await channel.ExchangeBindAsync(DeliveryExchange, Level(0), Stars(Levels - 1) + "0.#", cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueDeclareAsync(ForwardQueue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken).ConfigureAwait(false);
        await channel.QueueBindAsync(ForwardQueue, DeliveryExchange, Stars(Levels) + "x.#", cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Binds <paramref name="queue"/> to the delivery exchange by its exact name, once per broker.</summary>
    private async ValueTask EnsureBoundAsync(string queue, CancellationToken cancellationToken)
    {
        if (_bound.ContainsKey(queue))
        {
            return;
        }

        try
        {
            await broker.ManagementImpl.WithChannelAsync(channel => channel.QueueBindAsync(queue, DeliveryExchange, Stars(Levels) + "q." + queue, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            throw new TopologyException($"Queue '{queue}' does not exist on the RabbitMQ server; declare it before sending to it. Nothing was delayed.", ex);
        }

        _bound[queue] = 0;
    }

    /// <summary>Forgets that <paramref name="queue"/> is bound (it was deleted: a new queue of that name needs binding).</summary>
    internal void Forget(string queue) => _bound.TryRemove(queue, out _);

    /// <summary>Forgets that <paramref name="exchange"/> exists (it was deleted).</summary>
    internal void ForgetExchange(string exchange) => _exchanges.TryRemove(exchange, out _);

    /// <summary>The deliveries a delayed message had before (0 when it was not redelivered through the cascade).</summary>
    internal static int DeliveredBefore(IDictionary<string, object?>? headers) =>
        headers is not null && headers.TryGetValue(DeliveryCountHeader, out var value) && value is long or int
            && Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) is var n and > 0 and < int.MaxValue / 2
            ? (int)n
            : 0;

    /// <summary>The exchange and routing key to show for a delivery: those the message was published with, when it
    /// arrived from the cascade (or was dead-lettered by RabbitMQ with the cascade's routing key); else those it
    /// arrived with.</summary>
    internal static (string Exchange, string RoutingKey) Origin(IDictionary<string, object?>? headers, string exchange, string routingKey)
    {
        if (headers is null || !headers.TryGetValue(RoutingKeyHeader, out var key) || RabbitMqProperties.Text(key) is not { } original)
        {
            return (exchange, routingKey);
        }

        return exchange == DeliveryExchange
            ? (RabbitMqProperties.Text(headers.TryGetValue(ExchangeHeader, out var x) ? x : null) ?? "", original)
            : (exchange, IsCascadeKey(routingKey) ? original : routingKey);
    }

    /// <summary>Whether <paramref name="key"/> is a routing key of the cascade (28 bits, then <c>q.</c> or <c>x.</c>).</summary>
    internal static bool IsCascadeKey(string? key)
    {
        if (key is null || key.Length < KeyPrefixLength)
        {
            return false;
        }

        for (var i = 0; i < Levels; i++)
        {
            if (key[2 * i] is not ('0' or '1') || key[(2 * i) + 1] != '.')
            {
                return false;
            }
        }

        return key[2 * Levels] is 'q' or 'x' && key[(2 * Levels) + 1] == '.';
    }

    /// <summary>
    /// The headers of a message that went through the cascade, without its traces: the levels' <c>x-death</c> entries,
    /// the cascade's exchange and routing keys in the deaths that came after (RabbitMQ records those it delivered the
    /// message with), the first death when it was a level's (then the oldest remaining death is the first), and the
    /// <c>CC</c> header that carried the message's own routing key (so that RabbitMQ dead-letters it by that key too).
    /// </summary>
    internal static Dictionary<string, object?> WithoutTraces(IDictionary<string, object?> wire)
    {
        var original = RabbitMqProperties.Text(wire[RoutingKeyHeader]) ?? "";
        var originalExchange = RabbitMqProperties.Text(wire.TryGetValue(ExchangeHeader, out var x) ? x : null) ?? "";
        var headers = new Dictionary<string, object?>(wire, StringComparer.Ordinal);
        if (headers.TryGetValue(CarbonCopyHeader, out var cc) && cc is IList { Count: 1 } list && RabbitMqProperties.Text(list[0]) == original)
        {
            headers.Remove(CarbonCopyHeader);
        }

        var deaths = new List<object?>();
        if (headers.TryGetValue("x-death", out var all) && all is IList entries)
        {
            foreach (var entry in entries)
            {
                if (IsLevelDeath(entry) || entry is not IDictionary<string, object?> table)
                {
                    continue;
                }

                var death = new Dictionary<string, object?>(table, StringComparer.Ordinal);
                if (RabbitMqProperties.Text(death.TryGetValue("exchange", out var e) ? e : null) == DeliveryExchange)
                {
                    death["exchange"] = originalExchange;
                }

                if (death.TryGetValue("routing-keys", out var k) && k is IList keys)
                {
                    var own = keys.Cast<object?>().Where(r => !IsCascadeKey(RabbitMqProperties.Text(r))).ToList();
                    death["routing-keys"] = own.Count > 0 ? own : [original];
                }

                deaths.Add(death);
            }

            headers["x-death"] = deaths;
        }

        if (IsLevel(RabbitMqProperties.Text(headers.TryGetValue("x-first-death-queue", out var fq) ? fq : null)))
        {
            headers.Remove("x-first-death-queue");
            headers.Remove("x-first-death-reason");
            headers.Remove("x-first-death-exchange");
            if (deaths.Count > 0 && deaths[^1] is IDictionary<string, object?> first)
            {
                headers["x-first-death-queue"] = first.TryGetValue("queue", out var q) ? q : null;
                headers["x-first-death-reason"] = first.TryGetValue("reason", out var r) ? r : null;
                headers["x-first-death-exchange"] = first.TryGetValue("exchange", out var fe) ? fe : null;
            }
        }
        else if (RabbitMqProperties.Text(headers.TryGetValue("x-first-death-exchange", out var fx) ? fx : null) == DeliveryExchange)
        {
            headers["x-first-death-exchange"] = originalExchange;
        }

        return headers;
    }

    /// <summary>Whether <paramref name="name"/> is a header of the cascade's (not shown to the application).</summary>
    internal static bool IsOwnHeader(string name) => name is ExchangeHeader or RoutingKeyHeader or DeliveryCountHeader;

    /// <summary>Whether a <c>x-death</c> entry is the cascade's.</summary>
    internal static bool IsLevelDeath(object? entry) =>
        entry is IDictionary<string, object?> d && d.TryGetValue("queue", out var q) && IsLevel(RabbitMqProperties.Text(q));

    public async ValueTask DisposeAsync()
    {
        if (_forwarder is { } forwarder)
        {
            await forwarder.DisposeAsync().ConfigureAwait(false);
        }

        _declaring.Dispose();
    }

}
