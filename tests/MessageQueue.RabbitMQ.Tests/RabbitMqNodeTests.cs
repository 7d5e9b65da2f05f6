using System.Text;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, point 7 (a real server in CI): the private node <c>.ci/run</c> starts answers, confirms a
/// persistent publish and hands the message back. The transport's own tests (issue 18) build on this node.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class RabbitMqNodeTests
{
    [Test]
    public async Task ThePrivateNode_ConfirmsAPersistentPublish_AndHandsTheMessageBack()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        var queue = $"mq-node-test-{Guid.NewGuid():N}";
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: true);
        var properties = new BasicProperties { MessageId = "m-1", Persistent = true };
        await channel.BasicPublishAsync("", queue, mandatory: true, properties, Encoding.UTF8.GetBytes("hello"));

        var got = await channel.BasicGetAsync(queue, autoAck: true);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(got, Is.Not.Null, "the message is in the queue");
            Assert.That(Encoding.UTF8.GetString(got!.Body.Span), Is.EqualTo("hello"));
            Assert.That(got.BasicProperties.MessageId, Is.EqualTo("m-1"));
            Assert.That(connection.Endpoint.HostName, Is.EqualTo("127.0.0.1"), "the private node, not a server the machine runs");
        }
    }
}
