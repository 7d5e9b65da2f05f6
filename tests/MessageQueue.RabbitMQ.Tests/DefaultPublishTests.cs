using System.Reflection;
using System.Threading.Channels;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 7: a publish without options starts at once on a pooled publish (no allocation beyond its
/// body and id), and a consumer's bodies sit in rented arrays given back when settled. These show that both behave
/// as the general path does: the same properties, the same outcomes, nothing lost or mixed up under concurrency.</summary>
public sealed class DefaultPublishTests() : ReviewFixture("dpt")
{
    public sealed record Order(int Id, string Note = "");

    private static RabbitMqPublisher Publisher(IMessageBroker broker) => PooledPublish.Publisher(broker);

    private static Task WarmAsync(IMessageBroker broker, string queue) => PooledPublish.WarmAsync(broker, queue, new Order(-1));

    [Test]
    public async Task SendsWithoutOptions_StartAtOnce_AndArriveWithTheGeneralPathsProperties()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        await broker.Management.PurgeAsync(queue);
        var before = Publisher(broker).StartedAtOnce;
        var sent = new List<PublishResult>();
        for (var i = 0; i < 20; i++)
        {
            sent.Add(await broker.SendAsync(queue, new Order(i)));
        }

        var general = await broker.SendAsync(queue, new Order(20), new PublishOptions()); // the general path, for comparison
        Assert.That(Publisher(broker).StartedAtOnce - before, Is.EqualTo(20));
        Assert.That(sent.Select(r => r.MessageId).Distinct().Count(), Is.EqualTo(20));
        Assert.That(sent.All(r => r.RoutedQueues == 1), Is.True);

        await using var consumer = broker.Consume<Order>(queue);
        var expected = general.MessageId;
        for (var i = 0; i <= 20; i++)
        {
            var d = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"message {i}");
            using (Assert.EnterMultipleScope())
            {
                Assert.That(d.Message.Id, Is.EqualTo(i));
                Assert.That(d.Properties.MessageId, Is.EqualTo(i < 20 ? sent[i].MessageId : expected));
                Assert.That(d.Properties.MessageType, Is.EqualTo(typeof(Order).FullName));
                Assert.That(d.Properties.Headers, Is.Empty, "the transport's number header is not shown");
                Assert.That(d.Properties.Persistent, Is.True);
                Assert.That(d.Properties.Timestamp, Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromSeconds(10)));
                Assert.That(d.Properties.Expiration, Is.Null);
                Assert.That(d.Properties.CorrelationId, Is.Null);
                Assert.That(d.DeliveryCount, Is.EqualTo(1));
            }

            await d.AckAsync();
        }
    }

    [Test]
    public async Task OnThePooledPath_AMissingQueueIsATopologyError_ANowhereRouteIsRoutedToNone_AFullQueueIsFull()
    {
        var (queue, full, exchange) = (N("q"), N("full"), N("nowhere"));
        var broker = Build(b => b
            .AddQueue(queue)
            .AddQueue(full, q => { q.MaxLength = 1; q.Overflow = OverflowPolicy.RejectPublish; })
            .AddExchange(exchange, ExchangeType.Direct));
        await WarmAsync(broker, queue);
        await broker.PublishAsync(exchange, "none", new Order(-1)); // its existence checked once, then known

        for (var round = 0; round < 8; round++) // each publish a pooled one, reused by the next
        {
            var before = Publisher(broker).StartedAtOnce;
            var missing = await Assert.ThrowsAsync<TopologyException>(async () => await broker.SendAsync(N("missing"), new Order(round)));
            Assert.That(missing!.Message, Does.Contain("does not exist"));
            Assert.That((await broker.PublishAsync(exchange, "none", new Order(round))).RoutedQueues, Is.Zero);
            await broker.Management.PurgeAsync(full);
            Assert.That((await broker.SendAsync(full, new Order(round))).RoutedQueues, Is.EqualTo(1));
            await Assert.ThrowsAsync<QueueFullException>(async () => await broker.SendAsync(full, new Order(round)));
            Assert.That((await broker.SendAsync(queue, new Order(round))).RoutedQueues, Is.EqualTo(1), "the next send is unharmed");
            Assert.That(Publisher(broker).StartedAtOnce - before, Is.EqualTo(5), "each of them started at once");
        }
    }

    [Test]
    public async Task APublishsResult_IsTakenOnce_ItsPooledPublishServesTheNext()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        var send = broker.SendAsync(queue, new Order(1));
        var first = await send;
        Assert.That(first.RoutedQueues, Is.EqualTo(1));
        var next = await broker.SendAsync(queue, new Order(2));
        Assert.That(next.MessageId, Is.Not.EqualTo(first.MessageId));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await send, "a ValueTask awaited twice");
    }

    [Test]
    public async Task ConcurrentSendsWithoutOptions_AreAllConfirmedOnce_WithTheirOwnIds_AndAllArrive()
    {
        const int Senders = 8, Each = 300;
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        await broker.Management.PurgeAsync(queue);
        var results = await Task.WhenAll(Enumerable.Range(0, Senders).Select(s => Task.Run(async () =>
        {
            var mine = new List<(int Id, string MessageId)>();
            for (var i = 0; i < Each; i++)
            {
                var id = (s * Each) + i;
                mine.Add((id, (await broker.SendAsync(queue, new Order(id))).MessageId));
            }

            return mine;
        })));

        var sent = results.SelectMany(r => r).ToDictionary(r => r.MessageId, r => r.Id);
        Assert.That(sent, Has.Count.EqualTo(Senders * Each), "every result has its own id");
        await using var consumer = broker.Consume<Order>(queue, o => o.Prefetch = 200);
        for (var n = 0; n < Senders * Each; n++)
        {
            var d = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"message {n} of {Senders * Each}");
            Assert.That(sent.Remove(d.Properties.MessageId, out var id) && id == d.Message.Id, Is.True, $"message {d.Message.Id} arrives once, under the id its send returned");
            await d.AckAsync();
        }

        Assert.That(sent, Is.Empty);
    }

    /// <summary>A channel that closes fails what is outstanding on it, perhaps while a pooled publish is still being
    /// written there: its retry on another channel must wait for that write (they share its properties), and every
    /// send ends, confirmed or failed, none lost.</summary>
    [Test]
    public async Task ClosingThePublishersChannels_WhileSendsRun_EverySendEnds_AndNoConfirmedMessageIsLost()
    {
        const int Senders = 6, Each = 250;
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        await broker.Management.PurgeAsync(queue);
        var running = true;
        var closer = Task.Run(async () =>
        {
            var channels = (RabbitMqConfirmChannel?[])typeof(RabbitMqPublisher).GetField("_channels", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(Publisher(broker))!;
            for (var round = 0; Volatile.Read(ref running) && round < 40; round++)
            {
                if (channels[round % channels.Length] is { IsUsable: true } open)
                {
                    var channel = (IChannel)typeof(RabbitMqConfirmChannel).GetField("_channel", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(open)!;
                    try
                    {
                        await channel.CloseAsync(); // its outstanding publishes fail and are sent again elsewhere
                    }
                    catch (ObjectDisposedException)
                    {
                        // replaced and disposed by the publisher meanwhile
                    }
                }

                await Task.Yield();
            }
        });
        var sends = await Task.WhenAll(Enumerable.Range(0, Senders).Select(s => Task.Run(async () =>
        {
            var confirmed = new List<int>();
            for (var i = 0; i < Each; i++)
            {
                var id = (s * Each) + i;
                await broker.SendAsync(queue, new Order(id)); // a failure fails the test: each is sent again until confirmed
                confirmed.Add(id);
            }

            return confirmed;
        })));
        Volatile.Write(ref running, false);
        await closer;

        var missing = sends.SelectMany(c => c).ToHashSet();
        Assert.That(missing, Has.Count.EqualTo(Senders * Each));
        await using var consumer = broker.Consume<Order>(queue, o => o.Prefetch = 200);
        while (missing.Count > 0)
        {
            var d = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"the {missing.Count} confirmed messages not yet received");
            missing.Remove(d.Message.Id); // one sent twice (routed, then its channel closed before the confirm) comes twice
            await d.AckAsync();
        }
    }

    [Test]
    public async Task DeadLetteredAndDelayedBodies_AreTheirOwn_WhileOtherDeliveriesAreAckedAndTheirArraysReused()
    {
        const int Count = 300;
        var (queue, dead) = (N("q"), N("dead"));
        var broker = Build(b => b.AddQueue(dead).AddQueue(queue, q => q.DeadLetterQueue = dead));
        for (var i = 0; i < Count; i++)
        {
            await broker.SendAsync(queue, new Order(i, new string((char)('a' + (i % 26)), 10 + (i * 7 % 500))));
        }

        var handled = Channel.CreateUnbounded<int>();
        await using (broker.Subscribe<Order>(queue, async (d, _) =>
        {
            handled.Writer.TryWrite(d.Message.Id);
            if (d.Message.Id % 3 == 0)
            {
                await d.RejectAsync("every third", cancellationToken: CancellationToken.None);
            }
        }, o => o.Concurrency = 8))
        {
            for (var n = 0; n < Count; n++)
            {
                await Within(handled.Reader.ReadAsync(Patience).AsTask(), $"handled {n}");
            }
        }

        await using var consumer = broker.Consume<Order>(dead);
        var seen = new HashSet<int>();
        for (var n = 0; n < Count / 3; n++)
        {
            var d = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"dead letter {n}");
            var i = d.Message.Id;
            using (Assert.EnterMultipleScope())
            {
                Assert.That(i % 3, Is.Zero);
                Assert.That(d.Message.Note, Is.EqualTo(new string((char)('a' + (i % 26)), 10 + (i * 7 % 500))), "its body is the one it had, not another's");
                Assert.That(d.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.Rejected));
                Assert.That(d.Properties.Headers["x-rejection-reason"], Is.EqualTo("every third"), "dead-lettered by the transport, from the delivery's bytes");
            }

            Assert.That(seen.Add(i), Is.True);
            await d.AckAsync();
        }
    }
}
