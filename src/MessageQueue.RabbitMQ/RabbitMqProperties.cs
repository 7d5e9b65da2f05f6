using System.Collections;
using System.Globalization;
using System.Text;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// <see cref="MessageProperties"/> as AMQP basic properties and back (issue 18, points 3 and 5). Message id,
/// correlation id, reply-to, content type and the message type name (AMQP <c>type</c>) are short strings (at most 255
/// bytes); priority, delivery mode (persistent or not) and expiration (milliseconds) map directly; the timestamp is
/// AMQP's, in whole seconds. Header values keep their exact .NET types: AMQP returns every string as bytes and has no
/// unsigned, Guid or exact decimal and date types, so the values that would come back as another type travel with a
/// type hint in the <c>x-mq-header-types</c> table; values without a hint (from other publishers) are read as AMQP
/// gives them (strings as bytes). RabbitMQ's <c>x-death</c> becomes <see cref="MessageProperties.Deaths"/> (most
/// recent first, as in memory), and the server's <c>x-first-death-*</c> and <c>x-last-death-*</c> headers are strings.
/// </summary>
internal static class RabbitMqProperties
{
    internal const string TypesHeader = "x-mq-header-types";

    /// <summary>The header RabbitMQ.Client 7 adds to each message it publishes with confirms (to match a return to its
    /// publish): the client's, not the application's.</summary>
    internal const string ClientSequenceHeader = "x-dotnet-pub-seq-no";

    /// <summary>A quorum queue's count of a message's earlier deliveries: the delivery's
    /// <see cref="Delivery{T}.DeliveryCount"/> shows it, and a copy the transport publishes (a dead letter, a delayed
    /// redelivery) must not carry it into another queue.</summary>
    internal const string DeliveryCountHeader = "x-delivery-count";
    private const int MaxShortString = 255;

    /// <summary>The AMQP properties of a message published with <paramref name="properties"/>.</summary>
    /// <exception cref="ArgumentException">A short string is over 255 bytes, or the expiration is longer than
    /// RabbitMQ's (2^32 - 1 ms).</exception>
    internal static BasicProperties ToAmqp(MessageProperties properties)
    {
        var amqp = new BasicProperties
        {
            MessageId = ShortString(properties.MessageId, nameof(MessageProperties.MessageId)),
            CorrelationId = ShortString(properties.CorrelationId, nameof(MessageProperties.CorrelationId)),
            ReplyTo = ShortString(properties.ReplyTo, nameof(MessageProperties.ReplyTo)),
            ContentType = ShortString(properties.ContentType, nameof(MessageProperties.ContentType)),
            Type = ShortString(properties.MessageType, nameof(MessageProperties.MessageType)),
            Priority = properties.Priority,
            Timestamp = new AmqpTimestamp(properties.Timestamp.ToUnixTimeSeconds()),
            DeliveryMode = properties.Persistent ? DeliveryModes.Persistent : DeliveryModes.Transient,
        };
        if (properties.Expiration is { } ttl && !Scheduling.Durations.IsInfinite(ttl))
        {
            if (ttl > RabbitMqTopology.MaxTtl)
            {
                throw new ArgumentException($"The message's time to live ({ttl}) is longer than RabbitMQ's longest expiration, {RabbitMqTopology.MaxTtl} (2^32 - 1 ms).", nameof(properties));
            }

            amqp.Expiration = ((long)ttl.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        }

        if (properties.Headers.ContainsKey(TypesHeader))
        {
            throw new ArgumentException($"The header name '{TypesHeader}' is the transport's own (it carries the headers' types); use another name.", nameof(properties));
        }

        if (properties.Headers.Count > 0 || properties.Deaths.Count > 0)
        {
            var headers = new Dictionary<string, object?>(properties.Headers.Count + 2, StringComparer.Ordinal);
            Dictionary<string, object?>? types = null;
            foreach (var (name, value) in properties.Headers)
            {
                var (wire, hint) = Encode(value);
                headers[name] = wire;
                if (hint is not null)
                {
                    (types ??= new Dictionary<string, object?>(StringComparer.Ordinal))[name] = hint;
                }
            }

            if (types is not null)
            {
                headers[TypesHeader] = types;
            }

            if (properties.Deaths.Count > 0)
            {
                headers["x-death"] = XDeath(properties.Deaths); // a message the transport dead-letters or re-drives keeps its history
            }

            amqp.Headers = headers;
        }

        return amqp;
    }

    /// <summary>Writes into <paramref name="amqp"/> what <see cref="ToAmqp"/> makes of the properties of a message
    /// published without options (<c>MessageBroker.DefaultProperties</c>: an id, the time, the type name, persistent),
    /// leaving its headers (the transport's number header) as they are.</summary>
    /// <exception cref="ArgumentException">The type name is longer than AMQP carries.</exception>
    internal static void WriteDefault(BasicProperties amqp, string messageId, string typeName, long nowTicks)
    {
        amqp.MessageId = messageId;
        amqp.CorrelationId = null;
        amqp.ReplyTo = null;
        amqp.ContentType = null;
        amqp.Type = ShortString(typeName, nameof(MessageProperties.MessageType));
        amqp.Priority = 0;
        amqp.Timestamp = new AmqpTimestamp(new DateTimeOffset(nowTicks, TimeSpan.Zero).ToUnixTimeSeconds());
        amqp.DeliveryMode = DeliveryModes.Persistent;
        amqp.Expiration = null;
    }

    /// <summary>Death records as RabbitMQ writes them in <c>x-death</c>: a list of tables, most recent first.</summary>
    private static List<object?> XDeath(IReadOnlyList<DeathRecord> deaths)
    {
        var list = new List<object?>(deaths.Count);
        foreach (var d in deaths)
        {
            var table = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["count"] = d.Count,
                ["reason"] = d.Reason,
                ["queue"] = d.Queue,
                ["time"] = new AmqpTimestamp(d.Time.ToUnixTimeSeconds()),
                ["exchange"] = d.Exchange,
                ["routing-keys"] = d.RoutingKeys.Cast<object?>().ToList(),
            };
            if (d.OriginalExpiration is { } expiration && !Scheduling.Durations.IsInfinite(expiration))
            {
                table["original-expiration"] = ((long)expiration.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            }

            list.Add(table);
        }

        return list;
    }

    /// <summary>The properties of a message delivered with <paramref name="amqp"/>.</summary>
    internal static MessageProperties FromAmqp(IReadOnlyBasicProperties amqp)
    {
        var headers = new Dictionary<string, object?>(StringComparer.Ordinal);
        List<DeathRecord> deaths = [];
        if (amqp.Headers is { } received)
        {
            var wire = received.ContainsKey(RabbitMqDelays.RoutingKeyHeader) ? RabbitMqDelays.WithoutTraces(received) : received; // it went through the delay cascade
            var types = wire.TryGetValue(TypesHeader, out var t) && t is IDictionary<string, object?> table ? table : null;
            foreach (var (name, value) in wire)
            {
                if (name is TypesHeader or ClientSequenceHeader or DeliveryCountHeader or RabbitMqConfirmChannel.NumberHeader || RabbitMqDelays.IsOwnHeader(name))
                {
                    continue;
                }

                if (name == "x-death")
                {
                    deaths = Deaths(value);
                    continue;
                }

                headers[name] = types is not null && types.TryGetValue(name, out var hint)
                    ? Decode(value, hint)
                    : name.StartsWith("x-first-death-", StringComparison.Ordinal) || name.StartsWith("x-last-death-", StringComparison.Ordinal) ? Text(value) : value;
            }
        }

        return new MessageProperties
        {
            MessageId = amqp.MessageId ?? "",
            CorrelationId = amqp.CorrelationId,
            ReplyTo = amqp.ReplyTo,
            ContentType = amqp.ContentType,
            MessageType = amqp.Type,
            Priority = amqp.Priority,
            Timestamp = amqp.IsTimestampPresent() ? DateTimeOffset.FromUnixTimeSeconds(amqp.Timestamp.UnixTime) : default,
            Expiration = amqp.Expiration is { } ms && long.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out var millis) ? TimeSpan.FromMilliseconds(millis) : null,
            Persistent = amqp.DeliveryMode == DeliveryModes.Persistent,
            Headers = headers,
            Deaths = deaths,
        };
    }

    private static string? ShortString(string? value, string property) =>
        value is not null && Encoding.UTF8.GetByteCount(value) > MaxShortString
            ? throw new ArgumentException($"{property} is {Encoding.UTF8.GetByteCount(value)} bytes in UTF-8; AMQP carries at most {MaxShortString} there. Put longer values in a header.", property)
            : value;

    /// <summary>A header value as AMQP carries it, and the hint that restores its .NET type (null when AMQP gives it
    /// back as it is).</summary>
    private static (object? Wire, object? Hint) Encode(object? value)
    {
        switch (value)
        {
            case null or bool or sbyte or short or int or long or float or double or byte[] or AmqpTimestamp:
                return (value, null);
            case IDictionary<string, object?> table:
                // A nested table (another publisher's, as AMQP gave it): it travels as an AMQP table again; its
                // values take the forms headers travel in, without type hints (its strings come back as bytes).
                return (table.ToDictionary(e => e.Key, e => Encode(e.Value).Wire, StringComparer.Ordinal), null);
            case string s:
                return (s, "s");
            case byte b:
                return ((int)b, "u8");
            case ushort u:
                return ((int)u, "u16");
            case uint u:
                return ((long)u, "u32");
            case ulong u:
                return u <= long.MaxValue ? ((long)u, "u64") : (u.ToString(CultureInfo.InvariantCulture), "u64"); // integers compare by value on the server
            case decimal d:
                return (d.ToString(CultureInfo.InvariantCulture), "dec");
            case Guid g:
                return (g.ToString("D"), "guid");
            case DateTimeOffset dto:
                return (dto.ToString("O", CultureInfo.InvariantCulture), "dto");
            case IList list:
                var items = new List<object?>(list.Count);
                var hints = new List<object?>(list.Count);
                foreach (var item in list)
                {
                    var (w, h) = Encode(item);
                    items.Add(w);
                    hints.Add(h ?? "");
                }

                return (items, hints);
            default:
                throw new ArgumentException($"A header value of type '{value.GetType().FullName}' cannot travel with a message.", nameof(value));
        }
    }

    /// <summary>A header value in the form it travels in (without its type hint): what a binding argument is compared
    /// with.</summary>
    internal static object? ToWire(object? value) => Encode(value).Wire;

    /// <summary>The value of a header as its hint says, or as AMQP gave it when the hint does not fit it (another
    /// publisher's table, a value out of the hinted type's range): reading properties never fails.</summary>
    private static object? Decode(object? wire, object? hint)
    {
        try
        {
            return DecodeStrict(wire, hint);
        }
        catch (Exception ex) when (ex is FormatException or OverflowException or InvalidCastException or ArgumentException)
        {
            return wire;
        }
    }

    private static object? DecodeStrict(object? wire, object? hint)
    {
        if (hint is IList hints and not byte[] && wire is IList items and not byte[])
        {
            var list = new List<object?>(items.Count);
            for (var i = 0; i < items.Count; i++)
            {
                list.Add(Decode(items[i], i < hints.Count ? hints[i] : null));
            }

            return list;
        }

        var text = Text(hint);
        return text switch
        {
            "s" => Text(wire),
            "u8" => checked((byte)Convert.ToInt32(wire, CultureInfo.InvariantCulture)),
            "u16" => checked((ushort)Convert.ToInt32(wire, CultureInfo.InvariantCulture)),
            "u32" => checked((uint)Convert.ToInt64(wire, CultureInfo.InvariantCulture)),
            "u64" => wire is byte[] or string ? ulong.Parse(Text(wire)!, CultureInfo.InvariantCulture) : Convert.ToUInt64(wire, CultureInfo.InvariantCulture),
            "dec" => decimal.Parse(Text(wire)!, CultureInfo.InvariantCulture),
            "guid" => Guid.Parse(Text(wire)!),
            "dto" => DateTimeOffset.ParseExact(Text(wire)!, "O", CultureInfo.InvariantCulture),
            _ => wire,
        };
    }

    /// <summary>A string AMQP gave back as bytes (or as a string).</summary>
    internal static string? Text(object? value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string s => s,
        null => null,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    private static object? Field(IDictionary<string, object?> table, string name) => table.TryGetValue(name, out var value) ? value : null;

    /// <summary>RabbitMQ's <c>x-death</c> (a list of tables, most recent first) as death records.</summary>
    private static List<DeathRecord> Deaths(object? value)
    {
        var deaths = new List<DeathRecord>();
        if (value is not IList list)
        {
            return deaths;
        }

        foreach (var item in list)
        {
            if (item is not IDictionary<string, object?> d)
            {
                continue;
            }

            var keys = d.TryGetValue("routing-keys", out var k) && k is IList rk ? rk.Cast<object?>().Select(x => Text(x) ?? "").ToList() : [];
            var time = d.TryGetValue("time", out var t) && t is AmqpTimestamp ts ? DateTimeOffset.FromUnixTimeSeconds(ts.UnixTime) : default;
            var count = d.TryGetValue("count", out var c) && c is not null ? Convert.ToInt64(c, CultureInfo.InvariantCulture) : 1;
            deaths.Add(new DeathRecord(Text(Field(d, "queue")) ?? "", Text(Field(d, "reason")) ?? "", count, time, Text(Field(d, "exchange")) ?? "", keys)
            {
                OriginalExpiration = Text(Field(d, "original-expiration")) is { } ms && long.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out var millis)
                    ? TimeSpan.FromMilliseconds(millis)
                    : null,
            });
        }

        return deaths;
    }
}
