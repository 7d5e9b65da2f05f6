using System.Collections.Concurrent;
using MessageQueue.Queues;

namespace MessageQueue.Tests.Publishing;

/// <summary>Generated message ids: unique under concurrency, UUID version 7 layout, ordered by time then by making.</summary>
[TestFixture]
public sealed class MessageIdTests
{
    [Test]
    public void Ids_MadeOnFourThreadsAtOnce_AreAllDifferent()
    {
        var ids = new ConcurrentBag<string>();
        Parallel.For(0, 4, _ =>
        {
            for (var i = 0; i < 100_000; i++)
            {
                ids.Add(MessageIds.New());
            }
        });
        Assert.That(ids.Distinct(StringComparer.Ordinal).Count(), Is.EqualTo(400_000));
    }

    [Test]
    public void AnId_IsAVersion7Uuid_WhoseTimeIsNow()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var id = MessageIds.New();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var guid = Guid.ParseExact(id, "N");
        var ms = Convert.ToInt64(id[..12], 16);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(id, Has.Length.EqualTo(32).And.Match("^[0-9a-f]{32}$"));
            Assert.That(guid.Version, Is.EqualTo(7));
            Assert.That(guid.Variant, Is.InRange(8, 11), "RFC 9562 variant: binary 10xx in the top 4 bits of byte 8");
            Assert.That(ms, Is.InRange(before, after));
        }
    }

    [Test]
    public void Ids_MadeOneAfterAnother_SortInTheOrderTheyWereMade()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => MessageIds.New()).ToList();
        Assert.That(ids, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
    }
}
