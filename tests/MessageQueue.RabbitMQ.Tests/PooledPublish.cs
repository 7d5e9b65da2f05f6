using MessageQueue.RabbitMq;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>What the tests of the pooled publish (RabbitMqPublisher.Default.cs) share.</summary>
internal static class PooledPublish
{
    public static RabbitMqPublisher Publisher(IMessageBroker broker) => ((RabbitMqBroker)broker).Publisher;

    /// <summary>Sends <paramref name="warm"/> until the publisher's channels are open and sends start at once.</summary>
    public static async Task WarmAsync<T>(IMessageBroker broker, string queue, T warm)
    {
        for (var i = 0; i < 100 && Publisher(broker).StartedAtOnce < 8; i++)
        {
            await broker.SendAsync(queue, warm);
        }

        Assert.That(Publisher(broker).StartedAtOnce, Is.GreaterThanOrEqualTo(8), "sends without options start at once once the channels are open");
    }
}
