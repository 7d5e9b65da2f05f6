using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Threading.Channels;
using MessageQueue.Publishing;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of the RabbitMQ transport (issue 18): each test shows a fault and fails on the code as reviewed.
/// Names are unique per test and deleted on the server afterwards.</summary>
public sealed class Issue18ReviewTests() : ReviewFixture("i18")
{
    public sealed record Order(int Id);

    private Task<T> NextAsync<T>(Channel<T> channel, string what) => Within(channel.Reader.ReadAsync(Patience).AsTask(), what);

    // RabbitMqConsumer.cs:91-95 completes the delivery buffer when the channel shuts down, and
    // RabbitMqSubscription.cs:95-103 ends every worker on the ObjectDisposedException that follows. RabbitMQ.Client 7
    // recovers the connection, its channels and its consumers by default (RabbitMqTransport.Connect does not turn that
    // off), so after a network blip the recovered consumer keeps taking deliveries (up to the prefetch), TryWrite drops
    // them into the completed buffer, and nothing ever handles or settles them: the subscription is dead, silently,
    // and its messages sit unacked until the broker is disposed.
    [Test]
    public async Task Subscription_KeepsHandling_AfterTheConnectionDropsAndRecovers()
    {
        var proxy = Own(TcpProxy.Start(RabbitMqNode.RequireUrl())); // disposed after the brokers
        var queue = N("work");
        var viaProxy = Build(b => b.AddQueue(queue), proxy.Url);
        var direct = Build(b => b.AddQueue(queue));
        var handled = Channel.CreateUnbounded<int>();
        Own(viaProxy.Subscribe<Order>(queue, (d, _) => { handled.Writer.TryWrite(d.Message.Id); return ValueTask.CompletedTask; }));

        await direct.SendAsync(queue, new Order(1));
        Assert.That(await NextAsync(handled, "the first order"), Is.EqualTo(1));

        await DropAndRecoverAsync(proxy, viaProxy);

        await direct.SendAsync(queue, new Order(2));
        int next;
        do
        {
            next = await NextAsync(handled, "order 2: the subscription stopped when its channel went down and never resumed, although the connection recovered");
        }
        while (next == 1); // order 1 again, if the drop came before its ack reached the server (at least once)

        Assert.That(next, Is.EqualTo(2));
    }

    private async Task DropAndRecoverAsync(TcpProxy proxy, IMessageBroker broker)
    {
        var recovered = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        ((RabbitMqBroker)broker).Connection.RecoverySucceededAsync += (_, _) => { recovered.TrySetResult(true); return Task.CompletedTask; };
        proxy.DropConnections();
        await Within(recovered.Task, "the client's automatic recovery");
    }

    // The same for a pull consumer: after the recovery ReceiveAsync throws for good - a TopologyException saying the
    // queue "was deleted" (UnregisteredAsync, RabbitMqConsumer.cs:96-102, fires on the shutdown), which it was not -
    // while the recovered server-side consumer swallows deliveries no one can receive or settle.
    [Test]
    public async Task PullConsumer_KeepsReceiving_AfterTheConnectionDropsAndRecovers()
    {
        var proxy = Own(TcpProxy.Start(RabbitMqNode.RequireUrl())); // disposed after the brokers
        var queue = N("pull");
        var viaProxy = Build(b => b.AddQueue(queue), proxy.Url);
        var direct = Build(b => b.AddQueue(queue));
        var consumer = Own(viaProxy.Consume<Order>(queue));

        await DropAndRecoverAsync(proxy, viaProxy);

        await direct.SendAsync(queue, new Order(7));
        Delivery<Order> delivery;
        try
        {
            delivery = await consumer.ReceiveAsync(Patience);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or TopologyException)
        {
            Assert.Fail($"The connection recovered, but the consumer stopped for good ({ex.GetType().Name}: {ex.Message})");
            throw;
        }

        Assert.That(delivery.Message, Is.EqualTo(new Order(7)));
    }

    // RabbitMqSubscription.cs:145-159 held a failed delivery unacked for the whole retry interval; RabbitMQ closes a
    // channel holding one longer than consumer_timeout (30 min by default) with 406, so a 60-day interval always ended
    // so: the message was requeued and every worker ended (RabbitMqSubscription.cs:95-103); nothing consumed the queue
    // again. (Since the delay cascade, only an ordered subscription holds a retry in place, so it is one here.)
    // consumer_timeout cannot be shortened per queue on 3.10: the test makes the server send the same 406 mid-retry.
    [Test]
    public async Task ARetryLongerThanTheConsumerTimeout_DoesNotStopTheSubscription()
    {
        var queue = N("slow-retry");
        var broker = Build(b => b.AddQueue(queue));
        var calls = Channel.CreateUnbounded<int>();
        var subscription = Own(broker.Subscribe<Order>(queue, (d, _) =>
        {
            calls.Writer.TryWrite(d.DeliveryCount);
            return d.DeliveryCount == 1 && !d.Redelivered ? throw new InvalidOperationException("not yet") : ValueTask.CompletedTask;
        }, o =>
        {
            o.Retry = RetryPolicy.Intervals(TimeSpan.FromDays(60));
            o.OrderingKey = _ => "one key"; // retries wait in place, holding the delivery
        }));

        await broker.SendAsync(queue, new Order(1));
        Assert.That(await NextAsync(calls, "the first attempt"), Is.EqualTo(1));

        var channel = ConsumerChannel(subscription);
        var closed = new TaskCompletionSource<ushort>(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.ChannelShutdownAsync += (_, e) => { closed.TrySetResult(e.ReplyCode); return Task.CompletedTask; };
        await channel.BasicAckAsync(ulong.MaxValue / 2, multiple: false); // the server answers as consumer_timeout does
        Assert.That(await Within(closed.Task, "the server closing the channel"), Is.EqualTo(Constants.PreconditionFailed));

        Assert.That(await NextAsync(calls, "the requeued order handled again: the subscription stopped for good when the server closed its channel"), Is.GreaterThan(1));
    }

    private static IChannel ConsumerChannel(ISubscription subscription)
    {
        const BindingFlags flags = BindingFlags.Instance | BindingFlags.NonPublic;
        var consumer = subscription.GetType().GetField("_consumer", flags)!.GetValue(subscription)!;
        return (IChannel)consumer.GetType().GetField("_channel", flags)!.GetValue(consumer)!;
    }

    // RabbitMqPublisher.cs:91-104 opens a channel per concurrent publish with no bound; a connection carries at most
    // 2047 (channel_max), so "start many sends, await them all" fails some with ChannelAllocationException.
    [Test]
    public async Task ManyConcurrentSends_AllSucceed()
    {
        var queue = N("burst");
        var broker = Build(b => b.AddQueue(queue));
        const int count = 2200;
        var failures = new List<Exception>();
        foreach (var send in Enumerable.Range(0, count).Select(i => broker.SendAsync(queue, new Order(i), cancellationToken: Patience).AsTask()).ToList())
        {
            try
            {
                await send;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failures.Add(ex);
            }
        }

        Assert.That(failures, Is.Empty, () => $"{failures.Count} of {count} sends failed, e.g. {failures[0].GetType().Name}: {failures[0].Message}");
        Assert.That(await broker.Management.PurgeAsync(queue, Patience), Is.EqualTo(count));
    }

    // RabbitMqDeadLetters.cs:31 copies every header of the delivery (DeadLetterRouter.Record keeps them), including the
    // x-delivery-count the quorum queue set for that delivery; RabbitMqConsumer.DeliveryCount (RabbitMqConsumer.cs:154)
    // reads it in the dead-letter queue, so the dead letter's first delivery is DeliveryCount 2, Redelivered = true.
    // RabbitMQ's own dead-lettering does not carry it, and RabbitMqRedrive drops it for this very reason.
    [Test]
    public async Task ADeadLetterWithAReason_FromAQuorumQueue_IsNotARedeliveryInItsDeadLetterQueue()
    {
        var (work, dead) = (N("qwork"), N("qdead"));
        var broker = Build(
            b => b.AddQueue(dead).AddQueue(work, o => { o.Durable = true; o.DeadLetterQueue = dead; }),
            rabbit: o => o.QueueType(work, RabbitMqQueueType.Quorum));
        await broker.SendAsync(work, new Order(1));
        var consumer = Own(broker.Consume<Order>(work, o => o.Prefetch = 1));
        var first = await consumer.ReceiveAsync(Patience);
        await first.NackAsync(requeue: true);
        var second = await consumer.ReceiveAsync(Patience);
        Assert.That(second.DeliveryCount, Is.EqualTo(2));
        await second.RejectAsync("out of stock"); // dead-lettered by the transport, with the reason

        var letters = Own(broker.Consume<Order>(dead));
        var letter = await letters.ReceiveAsync(Patience);
        Assert.Multiple(() =>
        {
            Assert.That(letter.Properties.Headers[HeaderRules.RejectionReason], Is.EqualTo("out of stock"));
            Assert.That(letter.Properties.Headers.Keys, Does.Not.Contain("x-delivery-count"), "the origin queue's delivery count travelled with the dead letter");
            Assert.That((letter.DeliveryCount, letter.Redelivered), Is.EqualTo((1, false)), "the first delivery from the dead-letter queue");
        });
    }

    // RabbitMqTransaction.cs:98 reports every committed message as routed to one queue (routedQueues: 1), so a batch
    // published to an exchange that routes it nowhere says IsRouted = true. The transport's plain publishes report 0
    // (RabbitMqPublisher.cs:43-46), and so does the in-memory broker for a batch; RabbitMQ does tell inside a
    // transaction (a mandatory publish's basic.return arrives before tx.commit-ok).
    [Test]
    public async Task ABatchToAnExchangeThatRoutesNowhere_IsNotReportedRouted()
    {
        var (exchange, queue) = (N("nowhere"), N("unbound"));
        var broker = Build(b => b.AddExchange(exchange, ExchangeType.Direct).AddQueue(queue).Bind(exchange, queue, "kept"));
        var single = await broker.PublishAsync(exchange, "lost", new Order(0));
        var batch = await broker.PublishBatchAsync(exchange, "lost", [new Order(1), new Order(2)]);
        Assert.Multiple(() =>
        {
            Assert.That(single.IsRouted, Is.False, "a plain publish says so");
            Assert.That(batch.Select(r => r.IsRouted), Is.All.False, "the batch's messages reached no queue");
        });
    }

    // RabbitMQ.Client 7 stamps its confirm-tracking header x-dotnet-pub-seq-no (a big-endian ulong as bytes) on every
    // message the publisher's channels send (RabbitMqPublisher.cs:94 enables tracking); RabbitMqProperties.FromAmqp
    // hands it to the application as one of the message's headers. A message published without headers arrives with
    // one, unlike on the in-memory broker; it is client bookkeeping, not part of the message.
    [Test]
    public async Task AMessagePublishedWithoutHeaders_ArrivesWithoutHeaders()
    {
        var queue = N("plain");
        var broker = Build(b => b.AddQueue(queue));
        await broker.SendAsync(queue, new Order(1));
        var consumer = Own(broker.Consume<Order>(queue));
        var delivery = await consumer.ReceiveAsync(Patience);
        Assert.That(delivery.Properties.Headers.Keys, Is.Empty);
    }

    // UseRabbitMq refuses only ConnectionTimeout <= 0 (RabbitMqBrokerBuilderExtensions.cs:31); 60 days (over the ~49.7
    // a timer takes) makes the client throw ArgumentOutOfRangeException('delay'), which RabbitMqTransport.cs:74-77
    // reports as "Cannot connect to the RabbitMQ server": a reachable server is blamed for the option's value.
    [Test]
    public void ALongConnectionTimeout_IsRefusedNamingTheOption_OrConnects()
    {
        var queue = N("patient");
        var builder = new MessageBrokerBuilder().AddQueue(queue);
        try
        {
            builder.UseRabbitMq(RabbitMqNode.RequireUrl().ToString(), o => o.ConnectionTimeout = TimeSpan.FromDays(60));
        }
        catch (ArgumentOutOfRangeException ex)
        {
            Assert.That(ex.Message, Does.Contain("ConnectionTimeout"));
            return;
        }

        IMessageBroker? broker = null;
        Assert.That(() => broker = Own(builder.Build()), Throws.Nothing, "the server is reachable; only the timeout is long");
        Assert.That(broker, Is.Not.Null);
    }
}
