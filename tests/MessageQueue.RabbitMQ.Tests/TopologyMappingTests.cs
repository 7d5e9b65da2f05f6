using MessageQueue.RabbitMq;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, points 1 and 2, without a server: queue options as RabbitMQ x-arguments, and the options
/// RabbitMQ cannot honour refused all at once, each naming the queue, the option and why.</summary>
[TestFixture]
public sealed class TopologyMappingTests
{
    [Test]
    public void QueueOptions_BecomeTheirXArguments()
    {
        var options = new QueueOptions
        {
            Durable = true,
            MessageTtl = TimeSpan.FromSeconds(30),
            MaxLength = 100,
            MaxLengthBytes = 1_000_000,
            Overflow = OverflowPolicy.RejectPublishDeadLetter,
            DeadLetterQueue = "orders.dead",
            MaxPriority = 9,
            SingleActiveConsumer = true,
        };
        var args = RabbitMqTopology.QueueArguments(new QueueItem("orders", options, RabbitMqQueueType.Classic));
        Assert.That(args, Is.EquivalentTo(new Dictionary<string, object?>
        {
            ["x-message-ttl"] = 30_000L,
            ["x-max-length"] = 100,
            ["x-max-length-bytes"] = 1_000_000L,
            ["x-overflow"] = "reject-publish-dlx",
            ["x-dead-letter-exchange"] = "",
            ["x-dead-letter-routing-key"] = "orders.dead",
            ["x-max-priority"] = 9,
            ["x-single-active-consumer"] = true,
        }));
    }

    [TestCase(OverflowPolicy.DropHead, "drop-head")]
    [TestCase(OverflowPolicy.RejectPublish, "reject-publish")]
    [TestCase(OverflowPolicy.RejectPublishDeadLetter, "reject-publish-dlx")]
    public void EachOverflowPolicy_HasItsRabbitMqName(OverflowPolicy policy, string name)
    {
        var args = RabbitMqTopology.QueueArguments(new QueueItem("q", new QueueOptions { MaxLength = 1, Overflow = policy }, RabbitMqQueueType.Classic));
        Assert.That(args["x-overflow"], Is.EqualTo(name));
    }

    [Test]
    public void AQuorumQueue_HasItsTypeAndDeliveryLimit_AndADeadLetterExchangeKeepsItsKey()
    {
        var options = new QueueOptions { Durable = true, MaxDeliveryCount = 5, DeadLetterExchange = "dlx", DeadLetterRoutingKey = "failed", MessageTtl = Timeout.InfiniteTimeSpan };
        var args = RabbitMqTopology.QueueArguments(new QueueItem("q", options, RabbitMqQueueType.Quorum));
        Assert.That(args, Is.EquivalentTo(new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = 4, // RabbitMQ counts returns: 4 returns allow 5 deliveries
            ["x-dead-letter-exchange"] = "dlx",
            ["x-dead-letter-routing-key"] = "failed",
        }), "an infinite TTL is no x-message-ttl");
    }

    [Test]
    public void WhatRabbitMqCannotHonour_IsRefusedAllAtOnce_NamingQueueOptionAndWhy()
    {
        TopologyItem[] items =
        [
            new QueueItem("blocking", new QueueOptions { MaxLength = 10, Overflow = OverflowPolicy.Block }, RabbitMqQueueType.Classic),
            new QueueItem("dedup", new QueueOptions { DeduplicationWindow = TimeSpan.FromMinutes(1) }, RabbitMqQueueType.Classic),
            new QueueItem("long-ttl", new QueueOptions { MessageTtl = TimeSpan.FromDays(60) }, RabbitMqQueueType.Classic),
            new QueueItem("limited", new QueueOptions { MaxDeliveryCount = 3 }, RabbitMqQueueType.Classic),
            new QueueItem("quorum", new QueueOptions { MaxPriority = 5, Durable = false }, RabbitMqQueueType.Quorum),
            new QueueItem("fine", new QueueOptions { Durable = true, MaxLength = 10, MessageTtl = TimeSpan.FromDays(49) }, RabbitMqQueueType.Classic),
        ];
        var ex = Assert.Throws<TopologyException>(() => RabbitMqTopology.ThrowIfRefused(items));
        Assert.That(ex!.Problems, Has.Count.EqualTo(6));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Problems[0], Does.StartWith("Queue 'blocking' sets Overflow = Block, which the RabbitMQ transport cannot honour"));
            Assert.That(ex.Problems[1], Does.Contain("'dedup' sets DeduplicationWindow"));
            Assert.That(ex.Problems[2], Does.Contain("'long-ttl' sets MessageTtl = 60.00:00:00").And.Contain("2^32 - 1 ms"));
            Assert.That(ex.Problems[3], Does.Contain("'limited' sets MaxDeliveryCount").And.Contain("quorum"));
            Assert.That(ex.Problems[4], Does.Contain("'quorum' sets MaxPriority"));
            Assert.That(ex.Problems[5], Does.Contain("'quorum' sets Durable = false"));
            Assert.That(ex.Problems, Has.None.Contain("'fine'"));
        }
    }
}
