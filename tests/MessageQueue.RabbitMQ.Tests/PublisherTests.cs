using System.Text;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, point 3, on the private node: publishes complete on RabbitMQ's confirm; unroutable, refused
/// (nacked) and misaddressed publishes fail with the broker's exceptions, naming what they can; concurrent publishers
/// share a pool of channels safely.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class PublisherTests
{
    public sealed record Order(int Id, string Sku);

    private readonly string _prefix = $"mqp-{Guid.NewGuid():N}"[..16];

    private string N(string name) => $"{_prefix}-{name}";

    private static MessageProperties Props(string id) => new() { MessageId = id, Timestamp = DateTimeOffset.UtcNow, MessageType = "Order", ContentType = "application/json" };

    [Test]
    public async Task ASend_IsConfirmed_AndArrivesWithItsBodyAndProperties()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(N("q"), durable: false, exclusive: false, autoDelete: false);
        try
        {
            var result = await publisher.PublishAsync("", N("q"), new Order(7, "lamp"), Props("o-7"), mandatory: true, CancellationToken.None);
            var got = await channel.BasicGetAsync(N("q"), autoAck: true);
            using (Assert.EnterMultipleScope())
            {
                Assert.That((result.MessageId, result.RoutedQueues), Is.EqualTo(("o-7", 1)));
                Assert.That(got, Is.Not.Null, "in the queue once the publish completed (confirmed)");
                Assert.That(Encoding.UTF8.GetString(got!.Body.Span), Is.EqualTo("{\"id\":7,\"sku\":\"lamp\"}"));
                Assert.That(RabbitMqProperties.FromAmqp(got.BasicProperties).MessageId, Is.EqualTo("o-7"));
            }
        }
        finally
        {
            await channel.QueueDeleteAsync(N("q"));
        }
    }

    [Test]
    public async Task AMessageThatReachesNoQueue_IsUnroutableWhenMandatory_AndRoutedToNoneOtherwise()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(N("x"), "direct", durable: false, autoDelete: false);
        try
        {
            var ex = await Assert.ThrowsAsync<UnroutableMessageException>(async () => await publisher.PublishAsync(N("x"), "nowhere", new Order(1, "a"), Props("u-1"), mandatory: true, CancellationToken.None));
            Assert.That(ex!.Message, Does.Contain(N("x")).And.Contain("nowhere"));
            var result = await publisher.PublishAsync(N("x"), "nowhere", new Order(2, "a"), Props("u-2"), mandatory: false, CancellationToken.None);
            Assert.That(result.RoutedQueues, Is.Zero);
        }
        finally
        {
            await channel.ExchangeDeleteAsync(N("x"));
        }
    }

    [Test]
    public async Task ASendToAFullRejectPublishQueue_IsAQueueFullException_NamingTheQueue()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(N("full"), durable: false, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-max-length"] = 1, ["x-overflow"] = "reject-publish" });
        try
        {
            await publisher.PublishAsync("", N("full"), new Order(1, "a"), Props("f-1"), mandatory: true, CancellationToken.None);
            var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await publisher.PublishAsync("", N("full"), new Order(2, "a"), Props("f-2"), mandatory: true, CancellationToken.None));
            Assert.That(ex!.Message, Does.Contain($"Queue '{N("full")}' refused the message"));
            Assert.That((await channel.QueueDeclarePassiveAsync(N("full"))).MessageCount, Is.EqualTo(1));
        }
        finally
        {
            await channel.QueueDeleteAsync(N("full"));
        }
    }

    [Test]
    public async Task APublishToAMissingExchange_IsATopologyException_AndThePublisherGoesOn()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(N("after"), durable: false, exclusive: false, autoDelete: false);
        try
        {
            var ex = await Assert.ThrowsAsync<TopologyException>(async () => await publisher.PublishAsync(N("missing"), "k", new Order(1, "a"), Props("m-1"), mandatory: false, CancellationToken.None));
            Assert.That(ex!.Message, Does.StartWith($"Exchange '{N("missing")}' does not exist"));
            var result = await publisher.PublishAsync("", N("after"), new Order(2, "a"), Props("m-2"), mandatory: true, CancellationToken.None);
            Assert.That(result.RoutedQueues, Is.EqualTo(1), "the closed channel was dropped, not reused");
        }
        finally
        {
            await channel.QueueDeleteAsync(N("after"));
        }
    }

    [Test]
    public async Task EightConcurrentPublishers_AreAllConfirmed_AndEveryMessageArrivesOnce()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(N("many"), durable: false, exclusive: false, autoDelete: false);
        try
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(p => Task.Run(async () =>
            {
                for (var i = 0; i < 50; i++)
                {
                    await publisher.PublishAsync("", N("many"), new Order((p * 50) + i, "a"), Props($"c-{p}-{i}"), mandatory: true, CancellationToken.None);
                }
            })));
            var ids = new HashSet<string>();
            while (await channel.BasicGetAsync(N("many"), autoAck: true) is { } got)
            {
                ids.Add(got.BasicProperties.MessageId!);
            }

            Assert.That(ids, Has.Count.EqualTo(400));
        }
        finally
        {
            await channel.QueueDeleteAsync(N("many"));
        }
    }
}
