using System.Reflection;
using LiteDB;
using MessageQueue.LiteDb;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>The LiteDB store's reads and writes add nothing to LiteDB's process-wide caches per call: LiteDB keeps
/// every expression it parses (with a compiled delegate) by its text for the life of the process, so a query whose
/// text holds its values (<c>Query.Between</c>) grew the heap by one entry per lazy-queue read (70.7 MB of heap at a
/// million messages, against 14 MB without).</summary>
[TestFixture]
public sealed class LiteDbMemoryTests : TempDatabaseFixture
{
    [Test]
    public void ReadsAndPurges_OfEverChangingRanges_DoNotGrowLiteDbsExpressionCache()
    {
        using var store = new LiteDbMessageStore(Database);
        store.Open();
        store.Write(new StoreBatch(inserts: [.. Enumerable.Range(1, 2000).Select(i => new StoredMessage(i, "q", 0, 0, new byte[16]))]));
        store.ReadReady("q", 0, 10, 5); // the first of each kind may add its entry
        store.Write(new StoreBatch(purges: [("q", 1999, 2000)]));
        var before = CachedExpressions();

        for (var i = 0; i < 500; i++)
        {
            store.ReadReady("q", i, i + 100, 50);
            _ = store.ReadQueue("q", withEnvelopes: false).Take(3).ToList();
        }

        for (var i = 0; i < 50; i++)
        {
            store.Write(new StoreBatch(purges: [("q", 1000 + (2 * i), 1001 + (2 * i))], deletes: [i + 1]));
        }

        Assert.That(CachedExpressions() - before, Is.LessThan(10), "entries LiteDB's expression cache gained over 1,000 reads and 50 purges");
    }

    private static int CachedExpressions()
    {
        var cache = typeof(LiteDatabase).Assembly.GetType("LiteDB.BsonExpression")!
            .GetField("_cacheScalar", BindingFlags.Static | BindingFlags.NonPublic)!.GetValue(null)!;
        return (int)cache.GetType().GetProperty("Count")!.GetValue(cache)!;
    }
}
