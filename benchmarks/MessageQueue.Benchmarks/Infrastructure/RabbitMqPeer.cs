using System.Net.Sockets;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// A RabbitMQ server on localhost (guest/guest, port 5672) as the durable peer: persistent messages to a durable
/// queue, publisher confirms, a consumer with manual acks. Benchmarks that need it are marked
/// <see cref="RequiresRabbitMqAttribute"/>; <see cref="Program"/> leaves them out, saying why, when no server answers.
/// </summary>
public static class RabbitMqPeer
{
    /// <summary>Gets the server's AMQP URL: <c>MQ_RABBITMQ_URL</c> (the test node of scripts/rabbitmq-node.sh), else
    /// localhost:5672.</summary>
    public static Uri Url { get; } = new(Environment.GetEnvironmentVariable("MQ_RABBITMQ_URL") is { Length: > 0 } url ? url : "amqp://guest:guest@localhost:5672/");

    /// <summary>A connection to <see cref="Url"/>.</summary>
    public static Task<IConnection> ConnectAsync() => new ConnectionFactory { Uri = Url }.CreateConnectionAsync();

    /// <summary>Why RabbitMQ cannot be used, or null when a server answers.</summary>
    public static string? Unavailable()
    {
        try
        {
            using var client = new TcpClient();
            if (!client.ConnectAsync(Url.Host, Url.Port).Wait(TimeSpan.FromSeconds(2)))
            {
                return $"no RabbitMQ server answered on {Url.Host}:{Url.Port} within 2 s";
            }

            var connection = ConnectAsync().GetAwaiter().GetResult();
            connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return null;
        }
        catch (Exception ex) when (ex is SocketException or AggregateException or RabbitMQ.Client.Exceptions.BrokerUnreachableException)
        {
            return $"RabbitMQ on {Url.Host}:{Url.Port} is not reachable ({ex.GetBaseException().Message})";
        }
    }

    /// <summary>Publishes <paramref name="messages"/> persistent messages from <paramref name="publishers"/> channels
    /// with confirms (each keeping at most <paramref name="outstanding"/> unconfirmed) to a new durable queue, and
    /// consumes them with manual acks; deletes the queue at the end.</summary>
    public static async Task PublishAndConsumeAsync(IConnection connection, byte[] body, int messages, int publishers, int outstanding)
    {
        var queue = $"mq-bench-{Guid.NewGuid():N}";
        await using var consumerChannel = await connection.CreateChannelAsync().ConfigureAwait(false);
        await consumerChannel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false).ConfigureAwait(false);
        await consumerChannel.BasicQosAsync(0, 200, false).ConfigureAwait(false);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = 0;
        var consumer = new AsyncEventingBasicConsumer(consumerChannel);
        consumer.ReceivedAsync += async (_, e) =>
        {
            await consumerChannel.BasicAckAsync(e.DeliveryTag, multiple: false).ConfigureAwait(false);
            if (Interlocked.Increment(ref received) == messages)
            {
                done.TrySetResult();
            }
        };
        await consumerChannel.BasicConsumeAsync(queue, autoAck: false, consumer).ConfigureAwait(false);
        var properties = new BasicProperties { Persistent = true };
        await Task.WhenAll(Enumerable.Range(0, publishers).Select(_ => Task.Run(async () =>
        {
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)).ConfigureAwait(false);
            var pending = new Queue<Task>(outstanding);
            for (var i = 0; i < messages / publishers; i++)
            {
                if (pending.Count == outstanding)
                {
                    await pending.Dequeue().ConfigureAwait(false);
                }

                pending.Enqueue(channel.BasicPublishAsync("", queue, mandatory: false, properties, body).AsTask());
            }

            await Task.WhenAll(pending).ConfigureAwait(false);
        }))).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        await consumerChannel.QueueDeleteAsync(queue).ConfigureAwait(false);
    }
}

/// <summary>Marks a benchmark that needs a RabbitMQ server on localhost.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresRabbitMqAttribute : Attribute;
