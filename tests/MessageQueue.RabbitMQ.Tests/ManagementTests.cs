using MessageQueue.RabbitMQ.Tests.Contract;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 2: management on RabbitMQ. With the management HTTP API (<c>MQ_RABBITMQ_MANAGEMENT_URL</c>;
/// <c>.ci/run</c> enables the plugin on its node) queue counters and every queue's name; a peek that leaves the queue
/// as it was, at the cost it documents, refused where it would count against a delivery limit.</summary>
public sealed class ManagementTests : BackendFixture
{
    public sealed record Order(int Id);

    protected override bool OnRabbitMq => true;

    private static string RequireManagementUrl()
    {
        var url = Environment.GetEnvironmentVariable("MQ_RABBITMQ_MANAGEMENT_URL");
        if (string.IsNullOrWhiteSpace(url))
        {
            Assert.Ignore("No RabbitMQ management API: MQ_RABBITMQ_MANAGEMENT_URL is not set (scripts/rabbitmq-node.sh enables it at http://127.0.0.1:15682/; .ci/run sets it).");
        }

        return url!;
    }

    /// <summary>The queue's counters once they satisfy <paramref name="done"/>: RabbitMQ samples them (every 500 ms on
    /// the test node), so they trail the queue; the test's patience bounds the wait.</summary>
    private async Task<QueueInfo> CountersAsync(IMessageBroker broker, string queue, Func<QueueInfo, bool> done)
    {
        while (true)
        {
            var info = broker.Management.GetQueueInfo(queue);
            if (done(info) || Patience.IsCancellationRequested)
            {
                return info;
            }

            await Task.Yield(); // each read is an HTTP round trip; the next sample comes within 500 ms
        }
    }

    [Test]
    public async Task WithTheManagementApi_QueueInfoHasTheCounters_AndEveryQueueIsListed()
    {
        var url = RequireManagementUrl();
        var broker = Build(b => b.AddQueue(N("q")), o => o.ManagementUrl = url);
        var other = Build(b => b.AddQueue(N("other"))); // declared by another broker
        for (var i = 1; i <= 3; i++)
        {
            await broker.SendAsync(N("q"), new Order(i));
        }

        await using var consumer = broker.Consume<Order>(N("q"), o => o.Prefetch = 1);
        await (await ReceiveAsync(consumer)).AckAsync();
        var held = await ReceiveAsync(consumer);
        var info = await CountersAsync(broker, N("q"), i => i is { Published: 3, Acked: 1, Delivered: 2, Unacked: 1, Ready: 1, Consumers: 1 });
        using (Assert.EnterMultipleScope())
        {
            Assert.That((info.Ready, info.Unacked, info.Consumers), Is.EqualTo((1, 1, 1)));
            Assert.That((info.Published, info.Delivered, info.Acked, info.Redelivered), Is.EqualTo((3L, 2L, 1L, 0L)));
            Assert.That(broker.Management.GetQueueNames(), Does.Contain(N("other")).And.Contain(N("q")));
            Assert.That(broker.Management.GetQueueNames(), Has.None.StartsWith("mq.delay."), "the transport's own delay queues are not the application's");
            Assert.That(other.Management.GetQueueNames(), Does.Not.Contain(N("q")), "without the API: only what that broker declared");
            Assert.Throws<TopologyException>(() => broker.Management.GetQueueInfo(N("missing")));
        }

        await held.AckAsync();
    }

    [Test]
    public void AManagementUrlThatIsNotHttp_IsRefusedAtSetUp_AndOneThatDoesNotAnswer_NamesItself()
    {
        var builder = new MessageBrokerBuilder();
        var ex = Assert.Throws<ArgumentException>(() => builder.UseRabbitMq("amqp://localhost/", o => o.ManagementUrl = "ftp://localhost/"));
        Assert.That(ex!.Message, Does.Contain("ManagementUrl"));

        var broker = Build(b => b.AddQueue(N("q")), o => o.ManagementUrl = "http://127.0.0.1:15999/"); // nothing listens there
        var unreachable = Assert.Throws<MessageQueueException>(() => broker.Management.GetQueueInfo(N("q")));
        Assert.That(unreachable!.Message, Does.Contain("127.0.0.1:15999"));
    }

    [Test]
    public async Task APeek_ReadsTypedBodies_AndLeavesThemInPlace_AQuorumQueueWithALimitRefusesIt()
    {
        var broker = Build(
            b => b.AddQueue(N("q")).AddQueue(N("limited"), o => { o.Durable = true; o.MaxDeliveryCount = 3; }),
            o => o.QueueType(N("limited"), RabbitMqQueueType.Quorum));
        await broker.SendAsync(N("q"), new Order(1));
        await broker.SendAsync(N("q"), new Order(2), new PublishOptions { Headers = new Dictionary<string, object?> { ["tenant"] = "a" } });

        var peeked = await broker.Management.PeekAsync(N("q"));
        var again = await broker.Management.PeekAsync(N("q"), 1);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(peeked.Select(m => m.Body), Is.EqualTo(new object[] { new Order(1), new Order(2) }), "typed by their AMQP type name");
            Assert.That(peeked[1].Properties.Headers, Is.EqualTo(new Dictionary<string, object?> { ["tenant"] = "a" }));
            Assert.That(again.Single().DeliveryCount, Is.EqualTo(1), "the first peek read it: RabbitMQ counts that");
            Assert.That(broker.Management.GetQueueInfo(N("q")).Ready, Is.EqualTo(2));
        }

        var refused = await Assert.ThrowsAsync<NotSupportedException>(async () => await broker.Management.PeekAsync(N("limited")));
        Assert.That(refused!.Message, Does.Contain("delivery limit"));
    }
}
