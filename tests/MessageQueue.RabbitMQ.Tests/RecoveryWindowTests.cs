using System.Reflection;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Channels opened while the client recovers a dropped connection: open again, its channels and consumers not
/// yet recovered. CI (stop 27) saw ShovelTests' consumer, started just after the node came back, get its prefetch
/// window of 100 twice, and later fail to dispose. The client records such a channel and then recovers it a second
/// time: deliveries came on one server channel, acks went to another (406 unknown delivery tag), the server closed it
/// and redelivered the window; sometimes the client's recovery failed and the consumer received nothing more.</summary>
public sealed class RecoveryWindowTests() : ReviewFixture("rw")
{
    public sealed record Order(int Id);

    [Test]
    public async Task AConsumerStartedWhileTheConnectionRecovers_GetsEachMessageOnce()
    {
        var proxy = Own(TcpProxy.Start(RabbitMqNode.RequireUrl())); // disposed after the brokers
        var queue = N("work");
        var viaProxy = (RabbitMqBroker)Build(b =>
        {
            b.AddQueue(queue);
            for (var i = 0; i < 100; i++)
            {
                b.AddQueue(N($"extra{i}")); // a topology that takes the client a while to recover: a wide window
            }
        }, proxy.Url);
        var direct = Build(b => b.AddQueue(queue));
        var inWindow = 0;
        for (var round = 0; round < 2; round++)
        {
            for (var id = 1; id <= 200; id++)
            {
                await direct.SendAsync(queue, new Order(id));
            }

            proxy.DropConnections();
            await UntilAsync(() => !viaProxy.Recovery.IsUp); // the drop is seen
            await UntilAsync(() => viaProxy.Connection.IsOpen); // reconnected; channels and consumers still to recover
            inWindow += viaProxy.Recovery.IsUp ? 0 : 1;

            var consumer = Own(viaProxy.Consume<Order>(queue, o => o.Prefetch = 100));
            var channel = (IChannel)typeof(RabbitMqConsumer<Order>).GetField("_channel", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(consumer)!;
            string? closed = null;
            channel.ChannelShutdownAsync += (_, e) => { closed ??= $"{e.Initiator} {e.ReplyCode} {e.ReplyText}"; return Task.CompletedTask; };
            var received = new List<int>();
            var first = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"the first order of round {round}");
            await UntilAsync(() => viaProxy.Recovery.IsUp); // the client recovered what it recorded: this channel too, twice
            received.Add(first.Message.Id);
            await first.AckAsync(); // before: sent on the second server channel the client opened for this one (406)
            while (received.Count < 200)
            {
                var d = await Within(consumer.ReceiveAsync(Patience).AsTask(), $"order {received.Count + 1} of round {round}; the channel closed: {closed ?? "no"}");
                received.Add(d.Message.Id);
                await d.AckAsync();
            }

            Assert.That(received, Is.EqualTo(Enumerable.Range(1, 200)), $"round {round}: each once, in order (the channel closed: {closed ?? "no"})");
            await consumer.DisposeAsync();
            Assert.That(direct.Management.GetQueueInfo(queue).Consumers, Is.Zero, $"round {round}: a consumer left behind on the server");
        }

        Assert.That(inWindow, Is.GreaterThan(0), "no consumer started while the client was recovering");
    }
}
