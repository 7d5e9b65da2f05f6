using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LiteDB;

namespace MessageQueue.LiteDb;

/// <summary>Reads and the document shape. Reads run on any thread; each is a LiteDB read of committed pages, so a
/// read during a write sees the batches committed before it and nothing of the one in progress.</summary>
public sealed partial class LiteDbMessageStore
{
    /// <summary>Rows read per query by <see cref="ReadQueue"/>: LiteDB loads whole documents, envelopes included,
    /// also when only their lengths are wanted, so a page is kept small.</summary>
    private const int ReadPage = 256;

    /// <summary>A key range with its bounds as parameters. LiteDB caches every expression by its text for the life of
    /// the process (a static cache); <c>Query.Between</c> writes the bounds into the text, which would add an entry
    /// (and a compiled delegate) per read and grow the heap without end.</summary>
    private const string InRange = "$.k BETWEEN @0 AND @1";

    /// <inheritdoc/>
    public IEnumerable<StoredMessage> ReadQueue(string queue, bool withEnvelopes)
    {
        ArgumentNullException.ThrowIfNull(queue);
        return Pages(queue, withEnvelopes);
    }

    /// <summary>A queue's messages in id order, read a page at a time: each page is one short query, so no read
    /// holds a LiteDB transaction open while the caller works between pages.</summary>
    private IEnumerable<StoredMessage> Pages(string queue, bool withEnvelopes)
    {
        var after = 0L;
        while (true)
        {
            var page = Read(() => Range(queue, after, long.MaxValue).Limit(ReadPage).ToList(), $"queue '{queue}'");
            foreach (var doc in page)
            {
                yield return ToMessage(doc, withEnvelopes);
            }

            after = page.Count < ReadPage ? long.MaxValue : page[^1]["_id"].AsInt64;
            if (after == long.MaxValue)
            {
                yield break;
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> ReadReady(string queue, long afterId, long upToId, int max)
    {
        ArgumentNullException.ThrowIfNull(queue);
        if (max <= 0 || upToId <= afterId)
        {
            return [];
        }

        return Read(() => Range(queue, afterId, upToId).Where("$.d = 0").Limit(max).ToList(), $"queue '{queue}'")
            .Select(d => ToMessage(d, withEnvelope: true))
            .ToList();
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> Read(IReadOnlyList<long> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return Read(
            () => ids.Select(id => Collection().FindById(id)).Where(d => d is not null).Select(d => ToMessage(d, withEnvelope: true)).ToList(),
            $"{ids.Count} messages by id");
    }

    /// <summary>A queue's rows with ids in (<paramref name="afterId"/>, <paramref name="upToId"/>], in id order
    /// (callers never pass <paramref name="afterId"/> = <see cref="long.MaxValue"/>).</summary>
    private ILiteQueryable<BsonDocument> Range(string queue, long afterId, long upToId) =>
        Collection().Query().Where(InRange, Key(queue, afterId + 1), Key(queue, upToId)).OrderBy("$.k");

    private ILiteCollection<BsonDocument> Collection() =>
        _messages ?? throw new ObjectDisposedException(_name, "The store is closed.");

    private T Read<T>(Func<T> read, string what)
    {
        _gate.EnterReadLock();
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is not ObjectDisposedException && !IsFatal(ex))
        {
            throw new MessageStoreException($"Reading {what} from the {_name} failed: {ex.Message}", ex);
        }
        finally
        {
            _gate.ExitReadLock();
        }
    }

    private StoreContents ReadContents()
    {
        var queues = new Dictionary<string, int>(StringComparer.Ordinal);
        var maxId = 0L;
        foreach (var doc in _messages!.Query().Select("{ _id: $._id, k: $.k }").ToEnumerable())
        {
            var queue = QueueOf(doc);
            queues[queue] = queues.GetValueOrDefault(queue) + 1;
            maxId = Math.Max(maxId, doc["_id"].AsInt64);
        }

        var remembered = _dedup!.FindAll()
            .Select(d => new RememberedId(d["q"].AsString, d["m"].AsString, d["s"].AsInt64))
            .OrderBy(r => r.SeenTicks)
            .ToList();
        return new StoreContents(queues, maxId, remembered);
    }

    /// <summary>The index key that orders a queue's messages by id: the queue, U+0001 (no queue name has a control
    /// character), the id in 19 digits.</summary>
    private static string Key(string queue, long id) => string.Create(CultureInfo.InvariantCulture, $"{queue}\u0001{Math.Max(0, id):D19}");

    private static string QueueOf(BsonDocument doc)
    {
        var key = doc["k"].AsString;
        return key[..key.LastIndexOf('\u0001')];
    }

    /// <summary>A remembered id's document id: a hash, as message ids may be longer than an index key may be.</summary>
    private static string DedupId(string queue, string messageId) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{queue}\u0001{messageId}")));

    private static BsonDocument ToDocument(StoredMessage m)
    {
        var doc = new BsonDocument
        {
            ["_id"] = m.Id,
            ["k"] = Key(m.Queue, m.Id),
            ["c"] = m.DeliveryCount,
            ["d"] = m.DueTicks,
            ["e"] = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(m.Envelope, out var whole) && whole.Offset == 0 && whole.Count == whole.Array!.Length
                ? whole.Array
                : m.Envelope.ToArray(),
        };
        if (m.Transient)
        {
            doc["t"] = true;
        }

        return doc;
    }

    private static StoredMessage ToMessage(BsonDocument doc, bool withEnvelope)
    {
        var envelope = doc["e"].AsBinary;
        return new StoredMessage(doc["_id"].AsInt64, QueueOf(doc), doc["c"].AsInt32, doc["d"].AsInt64, withEnvelope ? envelope : ReadOnlyMemory<byte>.Empty)
        {
            Transient = doc["t"].IsBoolean && doc["t"].AsBoolean,
            Length = envelope.Length,
        };
    }
}
