using System.Text;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, points 1 and 2, on the private node: the mapped topology is declared idempotently, routes and
/// dead-letters as RabbitMQ does, and a declaration that conflicts with what the server has is a
/// <see cref="TopologyException"/> naming the item and both settings.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class TopologyDeclarationTests
{
    private readonly string _prefix = $"mqt-{Guid.NewGuid():N}"[..16];

    private string N(string name) => $"{_prefix}-{name}";

    [Test]
    public async Task ATopology_IsDeclaredTwiceWithoutChange_AndRoutesAndDeadLettersAsDeclared()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        TopologyItem[] items =
        [
            new ExchangeItem(N("orders"), ExchangeType.Topic, new ExchangeOptions()),
            new QueueItem(N("dead"), new QueueOptions(), RabbitMqQueueType.Classic),
            new QueueItem(N("eu"), new QueueOptions { MessageTtl = TimeSpan.Zero, DeadLetterQueue = N("dead") }, RabbitMqQueueType.Classic),
            new BindingItem(N("orders"), N("eu"), ToExchange: false, "order.eu.*", null),
        ];
        try
        {
            await RabbitMqTopology.DeclareAsync(connection, items);
            await RabbitMqTopology.DeclareAsync(connection, items); // idempotent
            await using var channel = await connection.CreateChannelAsync();
            await channel.BasicPublishAsync(N("orders"), "order.eu.created", Encoding.UTF8.GetBytes("m"));
            BasicGetResult? dead = null;
            for (var i = 0; i < 50 && dead is null; i++)
            {
                dead = await channel.BasicGetAsync(N("dead"), autoAck: true);
                if (dead is null)
                {
                    await Task.Delay(50);
                }
            }

            Assert.That(dead, Is.Not.Null, "routed by the topic binding, expired at once (TTL 0), dead-lettered to the queue named by DeadLetterQueue");
            var deaths = (IList<object?>)dead!.BasicProperties.Headers!["x-death"]!;
            var death = (IDictionary<string, object?>)deaths[0]!;
            Assert.That((Encoding.UTF8.GetString((byte[])death["reason"]!), Encoding.UTF8.GetString((byte[])death["queue"]!)), Is.EqualTo(("expired", N("eu"))));
        }
        finally
        {
            await DeleteAsync(connection, [N("eu"), N("dead")], [N("orders")]);
        }
    }

    [Test]
    public async Task AQueueThatExistsWithOtherSettings_IsATopologyException_NamingItAndBothSettings()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        try
        {
            await RabbitMqTopology.DeclareAsync(connection, [new QueueItem(N("q"), new QueueOptions { MaxLength = 5 }, RabbitMqQueueType.Classic)]);
            var ex = await Assert.ThrowsAsync<TopologyException>(() => RabbitMqTopology.DeclareAsync(connection, [new QueueItem(N("q"), new QueueOptions { MaxLength = 10 }, RabbitMqQueueType.Classic)]));
            Assert.That(ex!.Message, Does.Contain($"Queue '{N("q")}'").And.Contain("x-max-length=10").And.Contain("PRECONDITION_FAILED").And.Contain("'10'").And.Contain("'5'"));
        }
        finally
        {
            await DeleteAsync(connection, [N("q")], []);
        }
    }

    [Test]
    public async Task RefusedOptions_AreReportedBeforeAnythingIsDeclared()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        var ex = await Assert.ThrowsAsync<TopologyException>(() => RabbitMqTopology.DeclareAsync(connection,
        [
            new QueueItem(N("ok"), new QueueOptions(), RabbitMqQueueType.Classic),
            new QueueItem(N("blocking"), new QueueOptions { MaxLength = 1, Overflow = OverflowPolicy.Block }, RabbitMqQueueType.Classic),
        ]));
        Assert.That(ex!.Problems, Has.Count.EqualTo(1));
        await using var channel = await connection.CreateChannelAsync();
        var probe = await Assert.ThrowsAsync<global::RabbitMQ.Client.Exceptions.OperationInterruptedException>(() => channel.QueueDeclarePassiveAsync(N("ok")));
        Assert.That(probe!.ShutdownReason?.ReplyCode, Is.EqualTo(404), "nothing was declared");
    }

    private static async Task DeleteAsync(IConnection connection, string[] queues, string[] exchanges)
    {
        await using var channel = await connection.CreateChannelAsync();
        foreach (var queue in queues)
        {
            await channel.QueueDeleteAsync(queue);
        }

        foreach (var exchange in exchanges)
        {
            await channel.ExchangeDeleteAsync(exchange);
        }
    }
}
