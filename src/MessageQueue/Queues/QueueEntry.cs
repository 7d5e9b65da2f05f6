using System.Diagnostics;

namespace MessageQueue.Queues;

/// <summary>
/// One message in one queue: the only object allocated per message on the in-memory path. The body is
/// held by reference (no serialization) and the properties are created on first read when the publisher
/// gave none; the entries of one publish to several queues share them (<see cref="ShareProperties"/>), made on
/// first read of any of them.
/// </summary>
/// <remarks>
/// <see cref="Handle"/> packs the delivery tag (high 32 bits) and the state (low 32 bits) into one word so
/// that a consumer can claim a buffered delivery with one compare-and-swap, without the queue lock, and
/// can never claim a later delivery of the same entry by mistake.
/// </remarks>
[DebuggerDisplay("#{Sequence} {State} deliveries={DeliveryCount}")]
internal class QueueEntry : IMessageIdSource
{
    // The properties; or null until first read; or, for the second and later entries of a publish to several queues
    // without properties, that publish's first entry, whose properties (made on first read of either) they share.
    private object? _properties;
    private long _handle;

    internal QueueEntry(object body, MessageProperties? properties, string exchange, string routingKey, long timestampTicks, byte priority)
    {
        Body = body;
        _properties = properties;
        Exchange = exchange;
        RoutingKey = routingKey;
        TimestampTicks = timestampTicks;
        Priority = priority;
    }

    internal object Body { get; }

    /// <summary>The properties if they exist yet (never creates them; for hot-path checks).</summary>
    /// <remarks>Null for an entry that shares another's properties (<see cref="ShareProperties"/>) before they are read
    /// through it: those are defaults then (no expiration, no headers), as an entry's own made on first read are.</remarks>
    internal MessageProperties? RawProperties => Volatile.Read(ref _properties) as MessageProperties;

    internal string Exchange { get; }

    internal string RoutingKey { get; }

    internal long TimestampTicks { get; }

    internal byte Priority { get; }

    /// <summary>Position in the queue; a requeued entry goes back to it. Set under the queue lock.</summary>
    internal long Sequence;

    /// <summary>How many times the entry has been handed to a consumer. Changed under the queue lock.</summary>
    internal int DeliveryCount;

    /// <summary>The message's row while it is in a queue that stores it, or 0 (always 0 for a plain entry, which a
    /// queue without a store never gives a row). Set and cleared under the queue lock; stable while a delivery is in
    /// the consumer's hands, so the claim reads it without the lock.</summary>
    internal long StoreId
    {
        get => this is ExtendedEntry e ? e.Row : 0;
        set
        {
            if (this is ExtendedEntry e)
            {
                e.Row = value;
            }
            else if (value != 0)
            {
                throw new InvalidOperationException("A plain queue entry cannot have a row: its queue creates extended entries.");
            }
        }
    }

    internal long Handle => Volatile.Read(ref _handle);

    internal EntryState State => (EntryState)(int)Volatile.Read(ref _handle);

    internal int Tag => (int)(Volatile.Read(ref _handle) >> 32);

    internal static long Pack(int tag, EntryState state) => ((long)tag << 32) | (uint)state;

    /// <summary>Sets the state, keeping the tag (caller holds the queue lock).</summary>
    internal void SetState(EntryState state) => Volatile.Write(ref _handle, Pack(Tag, state));

    /// <summary>Starts a new delivery: a fresh tag, state <see cref="EntryState.Buffered"/> (caller holds the queue lock).</summary>
    internal int BeginDelivery()
    {
        var tag = Tag + 1;
        Volatile.Write(ref _handle, Pack(tag, EntryState.Buffered));
        return tag;
    }

    /// <summary>Takes back <paramref name="tag"/>'s delivery from the consumer's hands without a settle (its ack timeout
    /// passed, its consumer left): ready again under the next tag, so a late settle of it can never be mistaken for
    /// one that was made (a later removal sets the new tag's state, not the old one's).</summary>
    internal bool TryReturn(int tag) =>
        Interlocked.CompareExchange(ref _handle, Pack(tag + 1, EntryState.Ready), Pack(tag, EntryState.InHand)) == Pack(tag, EntryState.InHand);

    /// <summary>Moves <paramref name="tag"/>'s delivery from <paramref name="from"/> to <paramref name="to"/> atomically.</summary>
    internal bool TryTransition(int tag, EntryState from, EntryState to) =>
        Interlocked.CompareExchange(ref _handle, Pack(tag, to), Pack(tag, from)) == Pack(tag, from);

    /// <summary>The message id (made on first read when the publish gave none).</summary>
    string IMessageIdSource.MessageId => GetProperties().MessageId;

    /// <summary>Makes this entry, published to several queues at once without properties, share
    /// <paramref name="first"/>'s (the publish's first entry): one id for all its queues, made only when one of them
    /// is read. Called before this entry is enqueued; the first may be in its queue already, and its properties read
    /// (made) there meanwhile: this entry then reads those.</summary>
    internal void ShareProperties(QueueEntry first)
    {
        Debug.Assert(_properties is null && first._properties is not QueueEntry && !ReferenceEquals(first, this), "only an entry without properties shares those of a first entry, which shares none");
        _properties = first;
    }

    internal MessageProperties GetProperties()
    {
        var current = Volatile.Read(ref _properties);
        if (current is MessageProperties p)
        {
            return p;
        }

        p = current is QueueEntry first
            ? first.GetProperties()
            : new MessageProperties
            {
                MessageId = MessageIds.New(),
                Timestamp = new DateTimeOffset(TimestampTicks, TimeSpan.Zero),
                MessageType = MessageTypeNames.NameOf(Body.GetType()),
            };

        // Lost the race: another reader made them (from the same first entry, if shared), and those are kept.
        return Interlocked.CompareExchange(ref _properties, p, current) as MessageProperties ?? p;
    }
}

/// <summary>
/// An entry of a queue that stores messages or times acks: what only those need, kept out of the plain entry (the
/// one allocation per message on the in-memory path) so that it stays at 80 bytes.
/// </summary>
internal sealed class ExtendedEntry(object body, MessageProperties? properties, string exchange, string routingKey, long timestampTicks, byte priority)
    : QueueEntry(body, properties, exchange, routingKey, timestampTicks, priority)
{
    /// <summary>The message's row, or 0 (see <see cref="QueueEntry.StoreId"/>).</summary>
    internal long Row;

    /// <summary>When the consumer's code took the current delivery (broker clock ticks; the ack timeout counts from
    /// here). Written by the claim that won; until then it reads as not claimed yet.</summary>
    internal long ClaimedAt;

    /// <summary>The tag of the last delivery returned by its ack timeout (under the queue lock).</summary>
    internal int TimedOutTag;
}

/// <summary>Where an entry is.</summary>
internal enum EntryState
{
    /// <summary>In the ready list, waiting for a consumer.</summary>
    Ready = 0,

    /// <summary>Waiting in the delayed set for its due time.</summary>
    Delayed = 1,

    /// <summary>Written to a consumer's prefetch buffer, not yet taken by the consumer's code.</summary>
    Buffered = 2,

    /// <summary>Taken by the consumer's code; waiting for ack, nack or reject.</summary>
    InHand = 3,

    /// <summary>Acked, dead-lettered, purged or dropped.</summary>
    Gone = 4,
}

/// <summary>
/// Generates message ids: 32 hex digits in the layout of a version 7 UUID (RFC 9562), without a system call per id
/// (<c>Guid.CreateVersion7</c> reads the kernel's random source for every id: about 200 ns, more than a fanout's
/// queue writes). The first 48 bits are the Unix time in milliseconds; the other 74 free bits are a 74-bit number
/// drawn once per process from the kernel's random source and advanced by one per id. So ids are unique within a
/// process (2^74 of them before one repeats), unique across processes and restarts as long as two processes' random
/// starts do not fall within the number of ids they make of each other (for a million ids each, about one chance in
/// 10^16), and they sort by time, then by order of making within a process.
/// </summary>
internal static class MessageIds
{
    private const ulong Low62 = (1UL << 62) - 1;
    private static readonly ulong StartHigh = Random(12);
    private static readonly ulong StartLow = Random(62);
    private static long _made;

    internal static string New()
    {
        var n = (ulong)Interlocked.Increment(ref _made);
        var low = (StartLow + n) & Low62;
        var high = (StartHigh + ((StartLow + n) >> 62)) & 0xFFF; // the carry into the 12 bits above
        var ms = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() & 0xFFFF_FFFF_FFFF;
        var first = (ms << 16) | (0x7UL << 12) | high;      // time, version 7, 12 bits of the number
        var second = (0x2UL << 62) | low;                   // variant 10, 62 bits of the number
        Span<byte> bytes = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, first);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], second);
        return Convert.ToHexStringLower(bytes);
    }

    private static ulong Random(int bits)
    {
        Span<byte> bytes = stackalloc byte[8];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes) & ((1UL << bits) - 1);
    }
}

/// <summary>Something that knows a message's id without having made it yet (the engine's queue entry makes it on
/// first read), so a <see cref="PublishResult"/> of any backend costs no id on the hot path.</summary>
internal interface IMessageIdSource
{
    string MessageId { get; }
}
