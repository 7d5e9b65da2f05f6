using System.Diagnostics;
using MessageQueue.RabbitMQ.Tests.Contract;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 1: the transport's delay cascade. Its routing keys (no server); long delays waiting in the
/// level their highest bit names; a delayed publish to an exchange forwarded by a later run after the publisher is
/// gone; a quorum queue's delivery limit counting the deliveries before a delayed redelivery; what the cascade refuses.
/// The contract's delay tests (<c>BrokerContract.Delays</c>) show the rest on both backends.</summary>
public sealed class DelayCascadeTests : BackendFixture
{
    public sealed record Order(int Id);

    protected override bool OnRabbitMq => true;

    [TestCase(1, "mq.delay.l00", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.q.orders")]
    [TestCase(5, "mq.delay.l02", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.q.orders")]
    [TestCase(268_435_455, "mq.delay.l27", "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.q.orders")]
    public void Route_CarriesTheDelaysBits_HighestFirst_AndStartsAtItsHighestLevel(long seconds, string level, string key)
    {
        Assert.That(RabbitMqDelays.Route(seconds, toQueue: true, "orders"), Is.EqualTo((level, key)));
        Assert.That(RabbitMqDelays.Route(seconds, toQueue: false, "orders").RoutingKey, Does.EndWith(".x.orders"));
    }

    [Test]
    public void Seconds_RoundUp_AndAreBounded()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(RabbitMqDelays.Seconds(TimeSpan.FromMilliseconds(1)), Is.EqualTo(1));
            Assert.That(RabbitMqDelays.Seconds(TimeSpan.FromMilliseconds(1001)), Is.EqualTo(2));
            Assert.That(RabbitMqDelays.Seconds(TimeSpan.FromDays(60)), Is.EqualTo(5_184_000));
            Assert.That(RabbitMqDelays.Seconds(RabbitMqDelays.MaxDelay), Is.EqualTo((1L << 28) - 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => RabbitMqDelays.Seconds(RabbitMqDelays.MaxDelay + TimeSpan.FromSeconds(1)));
        }
    }

    [TestCase(60, 22)] // 60 days = 5,184,000 s: highest bit 22
    [TestCase(3 * 365, 26)] // three years: highest bit 26
    public async Task ALongDelay_WaitsInTheLevelOfItsHighestBit_WithoutExpiring(int days, int level)
    {
        var broker = Build(b => b.AddQueue(N("q")));
        await using var connection = await RabbitMqNode.ConnectAsync();
        await broker.SendAsync(N("q"), new Order(1), new PublishOptions { Delay = TimeSpan.FromDays(days), MessageId = N("long") });
        await using var channel = await connection.CreateChannelAsync();

        // Taken back with basic.get (the level holds messages of every run on this node): it is there, not expired,
        // with the key of its delay, and the queue has nothing yet.
        var found = await FindAsync(channel, RabbitMqDelays.Level(level), N("long"));
        Assert.That(found, Is.Not.Null, $"the message waits in {RabbitMqDelays.Level(level)}");
        Assert.That(found!.RoutingKey, Is.EqualTo(RabbitMqDelays.Route(days * 86_400L, toQueue: true, N("q")).RoutingKey));
        Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.Zero);
    }

    /// <summary>Takes the message <paramref name="messageId"/> from <paramref name="queue"/> (acked: removed); the
    /// others go back when the channel closes.</summary>
    private async Task<BasicGetResult?> FindAsync(IChannel channel, string queue, string messageId)
    {
        while (await channel.BasicGetAsync(queue, autoAck: false, Patience) is { } got)
        {
            if (got.BasicProperties.MessageId == messageId)
            {
                await channel.BasicAckAsync(got.DeliveryTag, multiple: false);
                return got;
            }
        }

        return null;
    }

    [Test]
    public async Task ADelayedPublishToAnExchange_IsForwardedByALaterRun_AfterThePublisherIsGone()
    {
        Action<MessageBrokerBuilder> topology = b => b.AddExchange(N("x"), ExchangeType.Topic).AddQueue(N("q")).Bind(N("x"), N("q"), "orders.#");
        var publisher = Build(topology);
        await publisher.PublishAsync(N("x"), "orders.placed", new Order(7), new PublishOptions { Delay = TimeSpan.FromSeconds(1) });
        await publisher.DisposeAsync(); // gone before it is due

        var later = Build(topology); // its forwarder starts: the cascade exists on the server
        await using var consumer = later.Consume<Order>(N("q"));
        var d = await ReceiveAsync(consumer);
        Assert.That((d.Message, d.Exchange, d.RoutingKey, d.Properties.Deaths.Count), Is.EqualTo((new Order(7), N("x"), "orders.placed", 0)));
        await d.AckAsync();
    }

    [Test]
    public async Task AQuorumQueuesDeliveryLimit_CountsTheDeliveriesBeforeADelayedRedelivery()
    {
        var broker = Build(
            b => b.AddQueue(N("dead"), o => o.Durable = true).AddQueue(N("q"), o => { o.Durable = true; o.MaxDeliveryCount = 2; o.DeadLetterQueue = N("dead"); }),
            r => r.DefaultQueueType = RabbitMqQueueType.Quorum);
        await broker.SendAsync(N("q"), new Order(1));
        await using var consumer = broker.Consume<Order>(N("q"));
        await (await ReceiveAsync(consumer)).NackAsync(requeue: true, delay: TimeSpan.FromSeconds(1));
        var second = await ReceiveAsync(consumer);
        Assert.That(second.DeliveryCount, Is.EqualTo(2));
        await second.NackAsync(requeue: true, delay: TimeSpan.FromSeconds(1)); // the limit: dead-lettered, not delayed

        await using var dead = broker.Consume<Order>(N("dead"));
        var letter = await ReceiveAsync(dead);
        Assert.That(letter.Properties.Deaths.Select(x => (x.Queue, x.Reason)), Is.EqualTo(new[] { (N("q"), DeathRecord.DeliveryLimit) }));
    }

    [Test]
    public async Task WhatTheCascadeCannotCarry_IsRefused_AndNothingIsPublished()
    {
        var wildcard = N("a.#.b");
        var broker = Build(b => b.AddQueue(wildcard).AddQueue(N("q")));
        var clock = Stopwatch.StartNew();
        var notDelayable = await Assert.ThrowsAsync<NotSupportedException>(async () => await broker.SendAsync(wildcard, new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(1) }));
        var tooLong = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await broker.SendAsync(N("q"), new Order(2), new PublishOptions { Delay = TimeSpan.FromDays(3200) }));
        var mandatory = await Assert.ThrowsAsync<NotSupportedException>(async () => await broker.PublishAsync("", N("q"), new Order(3), new PublishOptions { Delay = TimeSpan.FromSeconds(1), Mandatory = true }));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(notDelayable!.Message, Does.Contain(wildcard).And.Contain("wildcard"));
            Assert.That(tooLong!.Message, Does.Contain("8.5 years"));
            Assert.That(mandatory!.Message, Does.Contain("Mandatory"));
        }

        await broker.SendAsync(N("q"), new Order(4), new PublishOptions { Delay = TimeSpan.FromMilliseconds(10) }); // rounds up to a second
        await using var consumer = broker.Consume<Order>(N("q"));
        Assert.That((await ReceiveAsync(consumer)).Message.Id, Is.EqualTo(4), "only the one that could be delayed");
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(950)));
    }
}
