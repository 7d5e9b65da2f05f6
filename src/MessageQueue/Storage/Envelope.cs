using System.Text;

namespace MessageQueue.Storage;

/// <summary>
/// The stored form of a message: its properties (header values keep their exact types, so a stored message
/// routes and matches as it did in memory), where it was published, and the serialized body with its type.
/// A compact binary layout, versioned by its first byte.
/// </summary>
internal static class Envelope
{
    private const byte Version = 1;

    internal static byte[] Encode(object body, MessageProperties properties, string exchange, string routingKey, long timestampTicks, IMessageSerializer serializer, string? typeName = null)
    {
        var type = body.GetType();
        typeName ??= MessageTypeNames.NameToStore(type);
        byte[] bytes;
        try
        {
            bytes = serializer.Serialize(body, type);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new MessageSerializationException($"A '{type.FullName}' could not be serialized for a durable queue ({serializer.GetType().Name}): {ex.Message} Nothing was enqueued.", ex);
        }

        using var stream = new MemoryStream(bytes.Length + 256);
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Version);
            w.Write(typeName);
            w.Write(exchange);
            w.Write(routingKey);
            w.Write(timestampTicks);
            w.Write(properties.MessageId);
            WriteNullable(w, properties.CorrelationId);
            WriteNullable(w, properties.ReplyTo);
            w.Write(properties.Priority);
            w.Write(properties.Timestamp.UtcTicks);
            w.Write(properties.Expiration?.Ticks ?? -1);
            WriteNullable(w, properties.ContentType ?? serializer.ContentType);
            WriteNullable(w, properties.MessageType);
            w.Write(properties.Persistent);
            WriteHeaders(w, properties.Headers);
            WriteDeaths(w, properties.Deaths);
            w.Write(bytes.Length);
            w.Write(bytes);
        }

        return stream.ToArray();
    }

    private static void WriteHeaders(BinaryWriter w, IReadOnlyDictionary<string, object?> headers)
    {
        w.Write(headers.Count);
        foreach (var (key, value) in headers)
        {
            w.Write(key);
            WriteValue(w, value);
        }
    }

    private static void WriteDeaths(BinaryWriter w, IReadOnlyList<DeathRecord> deaths)
    {
        w.Write(deaths.Count);
        foreach (var d in deaths)
        {
            w.Write(d.Queue);
            w.Write(d.Reason);
            w.Write(d.Count);
            w.Write(d.Time.UtcTicks);
            w.Write(d.Exchange);
            w.Write(d.RoutingKeys.Count);
            foreach (var k in d.RoutingKeys)
            {
                w.Write(k);
            }

            w.Write(d.OriginalExpiration?.Ticks ?? -1);
        }
    }

    /// <summary>Decodes a stored message's envelope. Anything that cannot be read (an envelope cut short, of another
    /// version, with an unknown value tag or a count that does not fit) is a <see cref="MessageStoreException"/> that
    /// names the message, its queue and <paramref name="store"/>.</summary>
    /// <exception cref="MessageStoreException">The envelope cannot be read.</exception>
    internal static Decoded Decode(StoredMessage row, IMessageStore store, IMessageSerializer serializer)
    {
        try
        {
            return Decode(row.Envelope, serializer);
        }
        catch (MessageStoreException ex)
        {
            throw new MessageStoreException(
                $"The stored message with store id {row.Id} in queue '{row.Queue}' of the {Describe(store)} cannot be read: {ex.Message} " +
                $"Restore the store from a backup, or delete the message with store id {row.Id} from it to start without it.",
                ex.InnerException ?? ex);
        }
    }

    /// <summary>Names a store in messages: its own <see cref="object.ToString"/> (the SQLite store names its
    /// database file), else its type.</summary>
    internal static string Describe(IMessageStore store)
    {
        var name = store.ToString();
        return string.IsNullOrEmpty(name) || name == store.GetType().FullName ? $"message store '{store.GetType().FullName}'" : name;
    }

    /// <summary>Decodes an envelope. The body is deserialized when its type still exists and the bytes still
    /// fit it; otherwise <see cref="Decoded.Failure"/> says why and the body is the raw bytes.</summary>
    /// <exception cref="MessageStoreException">The envelope cannot be read (damaged, or of another version); the
    /// message does not name the store, which <see cref="Decode(StoredMessage, IMessageStore, IMessageSerializer)"/> adds.</exception>
    internal static Decoded Decode(ReadOnlyMemory<byte> data, IMessageSerializer serializer)
    {
        var (stored, typeName) = Read(data);
        object body = stored.Body;
        // When no type or several types are known by the stored name, the failure says so.
        if (MessageTypeNames.TryResolve(typeName, out var resolved, out var failure) && resolved is { } type)
        {
            try
            {
                body = serializer.Deserialize((byte[])stored.Body, type);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                failure = $"The stored body no longer deserializes as '{type.FullName}': {ex.Message}";
            }
        }

        return stored with { Body = body, Failure = failure };
    }

    /// <summary>Reads the envelope's fields; the body stays bytes.</summary>
    private static (Decoded Stored, string TypeName) Read(ReadOnlyMemory<byte> data)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            var version = stream.Length == 0 ? throw new EndOfStreamException("The envelope is empty.") : r.ReadByte();
            if (version != Version)
            {
                throw new MessageStoreException($"It has envelope version {version}; this code reads version {Version}. It was written by a newer MessageQueue (use that), or the store is damaged.");
            }

            var typeName = r.ReadString();
            var exchange = r.ReadString();
            var routingKey = r.ReadString();
            var timestampTicks = r.ReadInt64();
            var properties = ReadProperties(r);
            var bytes = ReadExactly(r, ReadCount(r, "body length"));
            return (new Decoded(bytes, properties, exchange, routingKey, timestampTicks, null), typeName);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or FormatException or OverflowException)
        {
            // IOException covers EndOfStreamException (cut short); ArgumentException covers out-of-range dates
            // and offsets and undecodable text.
            throw new MessageStoreException($"Its envelope is damaged: {ex.Message}", ex);
        }
    }

    /// <summary>Reads the message's properties, in the order <see cref="Encode"/> writes them.</summary>
    private static MessageProperties ReadProperties(BinaryReader r)
    {
        var messageId = r.ReadString();
        var correlationId = ReadNullable(r);
        var replyTo = ReadNullable(r);
        var priority = r.ReadByte();
        var timestamp = new DateTimeOffset(r.ReadInt64(), TimeSpan.Zero);
        var expiration = r.ReadInt64();
        var contentType = ReadNullable(r);
        var messageType = ReadNullable(r);
        var persistent = r.ReadBoolean();
        var headers = ReadHeaders(r);
        return new MessageProperties
        {
            MessageId = messageId,
            CorrelationId = correlationId,
            ReplyTo = replyTo,
            Priority = priority,
            Timestamp = timestamp,
            Expiration = expiration < 0 ? null : TimeSpan.FromTicks(expiration),
            ContentType = contentType,
            MessageType = messageType,
            Persistent = persistent,
            Headers = headers.Count == 0 ? MessageProperties.NoHeaders : headers,
            Deaths = ReadDeaths(r),
        };
    }

    private static Dictionary<string, object?> ReadHeaders(BinaryReader r)
    {
        var headerCount = ReadCount(r, "header count");
        var headers = new Dictionary<string, object?>(headerCount, StringComparer.Ordinal);
        for (var i = 0; i < headerCount; i++)
        {
            var key = r.ReadString();
            headers[key] = ReadValue(r);
        }

        return headers;
    }

    private static List<DeathRecord> ReadDeaths(BinaryReader r)
    {
        var deathCount = ReadCount(r, "death count");
        var deaths = new List<DeathRecord>(deathCount);
        for (var i = 0; i < deathCount; i++)
        {
            var queue = r.ReadString();
            var reason = r.ReadString();
            var count = r.ReadInt64();
            var time = new DateTimeOffset(r.ReadInt64(), TimeSpan.Zero);
            var ex = r.ReadString();
            var keys = new string[ReadCount(r, "routing key count")];
            for (var k = 0; k < keys.Length; k++)
            {
                keys[k] = r.ReadString();
            }

            var original = r.ReadInt64();
            deaths.Add(new DeathRecord(queue, reason, count, time, ex, keys) { OriginalExpiration = original < 0 ? null : TimeSpan.FromTicks(original) });
        }

        return deaths;
    }

    /// <summary>Reads a count and checks it against the bytes left (every counted item takes at least one), so a
    /// damaged count is an error, never a huge allocation.</summary>
    private static int ReadCount(BinaryReader r, string what)
    {
        var count = r.ReadInt32();
        var left = r.BaseStream.Length - r.BaseStream.Position;
        return count < 0 || count > left
            ? throw new InvalidDataException($"The {what} is {count}, but {left} bytes are left.")
            : count;
    }

    private static byte[] ReadExactly(BinaryReader r, int count)
    {
        var bytes = r.ReadBytes(count);
        return bytes.Length == count ? bytes : throw new EndOfStreamException($"The envelope ends {count - bytes.Length} bytes early.");
    }

    private static void WriteNullable(BinaryWriter w, string? value)
    {
        w.Write(value is not null);
        if (value is not null)
        {
            w.Write(value);
        }
    }

    private static string? ReadNullable(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private enum Tag : byte
    {
        Null, String, Bool, SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64, Single, Double, Decimal, Guid, DateTimeOffset, Bytes, List,
    }

    private static void WriteValue(BinaryWriter w, object? value)
    {
        switch (value)
        {
            case null: w.Write((byte)Tag.Null); break;
            case string s: w.Write((byte)Tag.String); w.Write(s); break;
            case bool b: w.Write((byte)Tag.Bool); w.Write(b); break;
            case sbyte v: w.Write((byte)Tag.SByte); w.Write(v); break;
            case byte v: w.Write((byte)Tag.Byte); w.Write(v); break;
            case short v: w.Write((byte)Tag.Int16); w.Write(v); break;
            case ushort v: w.Write((byte)Tag.UInt16); w.Write(v); break;
            case int v: w.Write((byte)Tag.Int32); w.Write(v); break;
            case uint v: w.Write((byte)Tag.UInt32); w.Write(v); break;
            case long v: w.Write((byte)Tag.Int64); w.Write(v); break;
            case ulong v: w.Write((byte)Tag.UInt64); w.Write(v); break;
            case float v: w.Write((byte)Tag.Single); w.Write(v); break;
            case double v: w.Write((byte)Tag.Double); w.Write(v); break;
            case decimal v: w.Write((byte)Tag.Decimal); w.Write(v); break;
            case Guid g: w.Write((byte)Tag.Guid); w.Write(g.ToByteArray()); break;
            case DateTimeOffset t: w.Write((byte)Tag.DateTimeOffset); w.Write(t.UtcTicks); w.Write((short)t.Offset.TotalMinutes); break;
            case byte[] bytes: w.Write((byte)Tag.Bytes); w.Write(bytes.Length); w.Write(bytes); break;
            case System.Collections.IList list:
                w.Write((byte)Tag.List);
                w.Write(list.Count);
                foreach (var item in list)
                {
                    WriteValue(w, item);
                }

                break;
            default:
                throw new MessageSerializationException($"A header value of type '{value.GetType().FullName}' cannot be stored.");
        }
    }

    private static object? ReadValue(BinaryReader r) => (Tag)r.ReadByte() switch
    {
        Tag.Null => null,
        Tag.String => r.ReadString(),
        Tag.Bool => r.ReadBoolean(),
        Tag.SByte => r.ReadSByte(),
        Tag.Byte => r.ReadByte(),
        Tag.Int16 => r.ReadInt16(),
        Tag.UInt16 => r.ReadUInt16(),
        Tag.Int32 => r.ReadInt32(),
        Tag.UInt32 => r.ReadUInt32(),
        Tag.Int64 => r.ReadInt64(),
        Tag.UInt64 => r.ReadUInt64(),
        Tag.Single => r.ReadSingle(),
        Tag.Double => r.ReadDouble(),
        Tag.Decimal => r.ReadDecimal(),
        Tag.Guid => new Guid(ReadExactly(r, 16)),
        Tag.DateTimeOffset => ReadDateTimeOffset(r),
        Tag.Bytes => ReadExactly(r, ReadCount(r, "byte array length")),
        Tag.List => ReadList(r),
        var tag => throw new InvalidDataException($"A header has an unknown value tag {(byte)tag}."),
    };

    private static DateTimeOffset ReadDateTimeOffset(BinaryReader r)
    {
        var ticks = r.ReadInt64();
        var offset = TimeSpan.FromMinutes(r.ReadInt16());
        return new DateTimeOffset(ticks, TimeSpan.Zero).ToOffset(offset);
    }

    private static List<object?> ReadList(BinaryReader r)
    {
        var count = ReadCount(r, "list length");
        var list = new List<object?>(count);
        for (var i = 0; i < count; i++)
        {
            list.Add(ReadValue(r));
        }

        return list;
    }

    /// <summary>A decoded envelope.</summary>
    internal sealed record Decoded(object Body, MessageProperties Properties, string Exchange, string RoutingKey, long TimestampTicks, string? Failure);
}
