using MessageQueue.RabbitMq;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of the pooled publish of a message without options (RabbitMqPublisher.Default.cs): each test shows
/// a fault and fails on the code as reviewed.</summary>
public sealed class PooledPathReviewTests() : ReviewFixture("ppr")
{
    public sealed record Order(int Id);

    /// <summary>A type name within the attribute's 255 characters but over AMQP's 255 bytes in UTF-8 (200 × 'é' =
    /// 400 bytes): the transport refuses it with an <see cref="ArgumentException"/>.</summary>
    [MessageType("éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé")]
    public sealed record Wide(int Id);

    private static Task WarmAsync(IMessageBroker broker, string queue) => PooledPublish.WarmAsync(broker, queue, new Order(-1));

    /// <summary>TryPublishDefault takes a slot, then WriteDefault throws for the type name: the slot is never given
    /// back. After MaxOutstanding such refusals every publish waits for a slot forever.</summary>
    [Test]
    public async Task SendsWhoseTypeNameAmqpCannotCarry_AreRefused_WithoutKeepingTheirSlots()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        for (var i = 0; i < RabbitMqPublisher.MaxOutstanding; i++)
        {
            var wide = new Wide(i);
            Assert.That(await Refused(() => broker.SendAsync(queue, wide)), Is.InstanceOf<ArgumentException>(), $"refused send {i}");
        }

        var sent = await Within(broker.SendAsync(queue, new Order(1)).AsTask(), "a send after the refused ones (it waits for a slot)");
        Assert.That(sent.RoutedQueues, Is.EqualTo(1));
    }

    /// <summary>The same through PublishAsync, whose ArgumentException is thrown synchronously (as on the general
    /// path): each one keeps a slot too.</summary>
    [Test]
    public async Task PublishesWhoseTypeNameAmqpCannotCarry_AreRefused_WithoutKeepingTheirSlots()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        for (var i = 0; i < RabbitMqPublisher.MaxOutstanding; i++)
        {
            var wide = new Wide(i);
            Assert.That(await Refused(() => broker.PublishAsync("", queue, wide)), Is.InstanceOf<ArgumentException>(), $"refused publish {i}");
        }

        var published = await Within(broker.PublishAsync("", queue, new Order(1)).AsTask(), "a publish after the refused ones (it waits for a slot)");
        Assert.That(published.RoutedQueues, Is.EqualTo(1));
    }

    /// <summary>A caller waiting synchronously (sync over async) gets its result on the general path (an incomplete
    /// async ValueTask is a Task). On the pooled path GetResult runs before the confirm: it throws, and it resets the
    /// pooled publish and puts it back in the pool while the channel still has it outstanding (the next publish that
    /// rents it is then completed by this one's confirm).</summary>
    [Test]
    public async Task ASendWaitedForSynchronously_GetsItsResult_AsOnTheGeneralPath()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        var general = await Task.Run(() => broker.SendAsync(queue, new Order(0), new PublishOptions()).AsTask().GetAwaiter().GetResult());
        Assert.That(general.RoutedQueues, Is.EqualTo(1), "the general path, for comparison");

        for (var round = 0; round < 20; round++)
        {
            var pooled = await Task.Run(() =>
            {
                var send = broker.SendAsync(queue, new Order(round));
#pragma warning disable CA2012 // the point of the test: a caller that waits synchronously
                return send.GetAwaiter().GetResult();
#pragma warning restore CA2012
            });
            Assert.That(pooled.RoutedQueues, Is.EqualTo(1), $"round {round}");
        }
    }

    /// <summary>What the early recycling does to the next publish: it rents the pooled publish still outstanding on its
    /// channel, and that one's ack completes it. A send to a missing queue is then reported routed: confirmed before
    /// its own confirm, and its return (the queue does not exist) is ignored.</summary>
    [Test]
    public async Task AfterASendWaitedForSynchronously_ASendToAMissingQueue_IsStillATopologyError()
    {
        var queue = N("q");
        var broker = Build(b => b.AddQueue(queue));
        await WarmAsync(broker, queue);
        for (var round = 0; round < 200; round++)
        {
            var missing = N($"missing{round}");
            var (result, misreported) = await Task.Run(async () =>
            {
                var send = broker.SendAsync(queue, new Order(round));
                try
                {
#pragma warning disable CA2012 // the point of the test: a caller that waits synchronously
                    send.GetAwaiter().GetResult();
#pragma warning restore CA2012
                }
                catch (InvalidOperationException)
                {
                    // the fault the previous test shows; what follows is what it does to the next send
                }

                try
                {
                    return ((PublishResult?)await broker.SendAsync(missing, new Order(-round)), (Exception?)null);
                }
#pragma warning disable CA1031 // returned to the assert below
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    return (null, ex);
                }
            });

            Assert.That(misreported, Is.InstanceOf<TopologyException>(), $"round {round}: the send to missing queue '{missing}' returned {(result is { } r ? $"a result routed to {r.RoutedQueues} queue(s)" : "nothing")}");
        }
    }

    private static async Task<Exception?> Refused(Func<ValueTask<PublishResult>> publish)
    {
        try
        {
            await publish();
            return null;
        }
#pragma warning disable CA1031 // returned to the caller's assert
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex;
        }
    }
}
