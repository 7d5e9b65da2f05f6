using System.Reflection;
using System.Text;
using MessageQueue.RabbitMq;
using MessageQueue.Routing;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of "channels wait for the client's recovery to finish" (<c>RabbitMqRecovery.CreateChannelWhenRecoveredAsync</c>):
/// what a timed-out wait means to the delay forwarder.</summary>
public sealed class RecoveryWaitReviewTests() : ReviewFixture("rwr")
{
    public sealed record Order(int Id);

    private const BindingFlags Private = BindingFlags.Instance | BindingFlags.NonPublic;

    /// <summary>A recovery that takes longer than <see cref="RabbitMqOptions.RecoveryTimeout"/> (a quorum queue's
    /// consumer waits for its leader, many channels): the forwarder's channel and consumer are recovered early and a
    /// delayed message comes due. Its publish waits for a channel, the wait times out with a plain
    /// <see cref="MessageQueueException"/>, which the forwarder takes for RabbitMQ refusing the message: it logs it
    /// dropped and acks it on its live channel, so the delayed message is lost. Before the change the publish opened its
    /// channel at once.</summary>
    [Test]
    public async Task ADelayedMessageDueWhileTheClientRecovers_IsNotDroppedWhenTheChannelWaitTimesOut()
    {
        var proxy = Own(TcpProxy.Start(RabbitMqNode.RequireUrl()));
        var exchange = N("x");
        var queue = N("q");
        var later = N("later");
        var dropped = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var broker = (RabbitMqBroker)Build(
            b => b.UseLoggerFactory(new DropLog(dropped)).AddExchange(exchange, ExchangeType.Fanout).AddQueue(queue).Bind(exchange, queue).AddQueue(later),
            proxy.Url,
            o => o.RecoveryTimeout = TimeSpan.FromSeconds(1));
        await broker.Delays.EnsureDeclaredAsync(Patience); // the forwarder consumes: its channel is recovered before the one below
        var consumer = Own(broker.Consume<Order>(later));
        var laterTag = (string)consumer.GetType().GetField("_consumerTag", Private)!.GetValue(consumer)!;

        await using var direct = await RabbitMqNode.ConnectAsync();
        await using var publishing = await direct.CreateChannelAsync(cancellationToken: Patience);
        var held = 0;
        broker.Connection.RecoveringConsumerAsync += async (_, e) =>
        {
            if (e.ConsumerTag != laterTag || Interlocked.Exchange(ref held, 1) != 0)
            {
                return;
            }

            // The forwarder is consuming again; the client is still recovering: a delayed message comes due now.
            var properties = new BasicProperties
            {
                MessageId = "due-1",
                Headers = new Dictionary<string, object?> { [RabbitMqDelays.ExchangeHeader] = exchange, [RabbitMqDelays.RoutingKeyHeader] = "k" },
            };
            var key = string.Concat(Enumerable.Repeat("0.", RabbitMqDelays.Levels)) + "x." + exchange;
            await publishing.BasicPublishAsync(RabbitMqDelays.DeliveryExchange, key, mandatory: true, properties, Encoding.UTF8.GetBytes("{\"Id\":1}"), Patience);
            try
            {
                await dropped.Task.WaitAsync(TimeSpan.FromSeconds(5), Patience); // this consumer's recovery takes 5 s
            }
            catch (TimeoutException)
            {
                // not dropped: the recovery goes on
            }
        };

        proxy.DropConnections();
        await UntilAsync(() => Volatile.Read(ref held) == 1 && broker.Recovery.IsUp);
        Assert.That(dropped.Task.IsCompleted ? dropped.Task.Result : null, Is.Null, "the forwarder dropped (acked unpublished) a delayed message because its channel wait timed out");

        await using var reading = await direct.CreateChannelAsync(cancellationToken: Patience);
        var arrived = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var listener = new AsyncEventingBasicConsumer(reading);
        listener.ReceivedAsync += (_, e) =>
        {
            arrived.TrySetResult(e.BasicProperties.MessageId);
            return Task.CompletedTask;
        };
        await reading.BasicConsumeAsync(queue, autoAck: true, listener, Patience);
        Assert.That(await Within(arrived.Task, "the delayed message in its queue"), Is.EqualTo("due-1"));
    }

    /// <summary>Completes <paramref name="dropped"/> with the message of the forwarder's "dropped" warning.</summary>
    private sealed class DropLog(TaskCompletionSource<string> dropped) : ILoggerFactory, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 61)
            {
                dropped.TrySetResult($"{formatter(state, exception)}: {exception?.Message}");
            }
        }
    }
}
