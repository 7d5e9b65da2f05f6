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

    [Test]
    public void EntriesOfOneFanoutPublish_ReadFromFourThreadsAtOnce_AllHaveOneId()
    {
        for (var round = 0; round < 2_000; round++)
        {
            var first = new QueueEntry(new object(), null, "f", "", DateTime.UtcNow.Ticks, 0);
            var entries = new[] { first, new QueueEntry(first.Body, null, "f", "", first.TimestampTicks, 0), new QueueEntry(first.Body, null, "f", "", first.TimestampTicks, 0), new QueueEntry(first.Body, null, "f", "", first.TimestampTicks, 0) };
            for (var i = 1; i < entries.Length; i++)
            {
                entries[i].ShareProperties(first);
            }

            using var start = new Barrier(entries.Length);
            var ids = new string[entries.Length];
            Parallel.For(0, entries.Length, new ParallelOptions { MaxDegreeOfParallelism = entries.Length }, i =>
            {
                start.SignalAndWait();
                ids[i] = entries[(i + round) % entries.Length].GetProperties().MessageId;
            });
            Assert.That(ids.Distinct().Count(), Is.EqualTo(1), $"round {round}");
            Assert.That(entries.Select(e => e.GetProperties()).Distinct().Count(), Is.EqualTo(1), "one properties object, read again through any entry");
        }
    }

    [Test]
    public async Task AFanoutPublish_ReadFirstThroughItsLastQueue_GivesEveryQueueTheIdThePublishReturned()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("f", ExchangeType.Fanout).AddQueue("a").AddQueue("b").AddQueue("c")
            .Bind("f", "a").Bind("f", "b").Bind("f", "c").Build();
        var result = await broker.PublishAsync("f", "", "hello");
        var seen = new List<string>();
        foreach (var queue in new[] { "c", "a", "b" })
        {
            await using var consumer = broker.Consume<string>(queue);
            var delivery = await consumer.ReceiveAsync();
            seen.Add(delivery.Properties.MessageId);
            Assert.That(delivery.Properties.MessageType, Is.EqualTo("System.String"));
            await delivery.AckAsync();
        }

        Assert.That(seen, Is.All.EqualTo(result.MessageId));
    }
}
