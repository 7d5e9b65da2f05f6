using System.Collections.Concurrent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>Many producers and consumers with random ack, nack and reject: every message ends exactly once,
/// acked or dead-lettered, and nothing is lost or duplicated except by redelivery.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class StressTests
{
    private const int Producers = 4;
    private const int PerProducer = 5_000;
    private const int Total = Producers * PerProducer;

    private enum Decision
    {
        Ack,
        Requeue,
        Reject,
    }

    [Test]
    public async Task ManyProducersAndConsumers_RandomSettlement_ConservesEveryMessage()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("in", ExchangeType.Fanout)
            .AddQueue("dead")
            .AddQueue("work", o => { o.MaxDeliveryCount = 4; o.DeadLetterQueue = "dead"; })
            .Bind("in", "work")
            .Build();

        var acked = new ConcurrentDictionary<int, int>();
        var rejected = new ConcurrentDictionary<int, int>();
        var requeuedAtLimit = new ConcurrentDictionary<int, int>();
        var deliveries = 0L;

        Decision Decide(Delivery<int> d)
        {
            Interlocked.Increment(ref deliveries);
            var roll = Random.Shared.Next(100);
            var decision = roll < 70 ? Decision.Ack : roll < 92 ? Decision.Requeue : Decision.Reject;
            var counter = decision switch { Decision.Ack => acked, Decision.Reject => rejected, _ => d.DeliveryCount >= 4 ? requeuedAtLimit : null };
            counter?.AddOrUpdate(d.Message, 1, (_, n) => n + 1);
            return decision;
        }

        var subs = Enumerable.Range(0, 2).Select(_ => broker.Subscribe<int>("work", async (d, ct) =>
        {
            switch (Decide(d))
            {
                case Decision.Requeue: await d.NackAsync(requeue: true, cancellationToken: ct); break;
                case Decision.Reject: await d.RejectAsync("stress", ct); break;
            }
        }, o => { o.Concurrency = 3; o.Prefetch = 8; })).ToList();

        using var stop = new CancellationTokenSource();
        var pullers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            await using var consumer = broker.Consume<int>("work", o => o.Prefetch = 5);
            try
            {
                while (true)
                {
                    var d = await consumer.ReceiveAsync(stop.Token);
                    switch (Decide(d))
                    {
                        case Decision.Ack: await d.AckAsync(); break;
                        case Decision.Requeue: await d.NackAsync(requeue: true); break;
                        case Decision.Reject: await d.RejectAsync("stress"); break;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        })).ToList();

        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                var r = await broker.PublishAsync("in", "", (p * PerProducer) + i);
                Assert.That(r.RoutedQueues, Is.EqualTo(1));
            }
        })).ToList();

        await Task.WhenAll(producers).WithSafety();
        var info = await broker.WaitForQueueAsync("work", i => i.Acked + i.DeadLettered == Total && i.Unacked == 0 && i.Ready == 0);
        await stop.CancelAsync();
        await Task.WhenAll(pullers).WithSafety();
        foreach (var s in subs)
        {
            await s.DisposeAsync();
        }

        var dead = await broker.Management.PeekAsync("dead", int.MaxValue);
        var deadIds = dead.Select(m => (int)m.Body).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(info.Published, Is.EqualTo(Total));
            Assert.That(acked.Values, Has.All.EqualTo(1), "no message acked twice");
            Assert.That(deadIds, Is.Unique, "no message dead-lettered twice");
            Assert.That(acked.Keys.Intersect(deadIds), Is.Empty, "a message ends one way only");
            Assert.That(acked.Keys.Concat(deadIds).Order(), Is.EqualTo(Enumerable.Range(0, Total)), "every message ends, none lost");
            Assert.That(info.Acked, Is.EqualTo(acked.Count));
            Assert.That(info.Delivered, Is.EqualTo(Interlocked.Read(ref deliveries)));
            Assert.That(deadIds.Count, Is.EqualTo(rejected.Count + requeuedAtLimit.Count), "dead letters are exactly the rejects and the requeues past the limit");
            Assert.That(dead.Where(m => m.Properties.Deaths[0].Reason == DeathRecord.DeliveryLimit).Count(), Is.EqualTo(requeuedAtLimit.Count));
            Assert.That(dead.All(m => m.Properties.Deaths.Count == 1), Is.True);
        });
    }
}
