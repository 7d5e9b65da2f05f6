using System.Reflection;
using System.Threading.Channels;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of the delay cascade, connection recovery and management API (issue 19): each test shows a fault
/// and fails on the code as reviewed. Names are unique per test and deleted on the server afterwards.</summary>
public sealed class Issue19ReviewTests() : ReviewFixture("i19")
{
    public sealed record Order(int Id);

    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    private Task<Delivery<Order>> ReceiveAsync(IConsumer<Order> consumer, string what) => Within(consumer.ReceiveAsync(Patience).AsTask(), what);

    // RabbitMqConsumer.Settle.cs:61-75: a delayed nack marks the delivery settled (Settle), then publishes the copy
    // through RabbitMqDelays.PrepareAsync (RabbitMqDelays.cs:127), whose RabbitMqProperties.ToAmqp throws
    // ArgumentException for a header value it cannot encode - an AMQP table (or timestamp), which FromAmqp hands over as
    // it arrived from another publisher. The catch at Settle.cs:72 does not take ArgumentException: the delivery is
    // neither acked nor nacked (and cannot be settled again: AlreadySettled), and in a subscription the exception leaves
    // HandleAsync and ends the worker (RabbitMqSubscription.cs:109): the subscription is dead, the message unacked.
    [Test]
    public async Task ARetryWithAnInterval_OfAMessageWithATableHeaderFromAnotherPublisher_IsRetried()
    {
        var queue = N("foreign");
        var broker = Build(b => b.AddQueue(queue));
        var calls = Channel.CreateUnbounded<int>();
        Own(broker.Subscribe<Order>(queue, (d, _) =>
        {
            calls.Writer.TryWrite(d.DeliveryCount);
            return d.DeliveryCount == 1 ? throw new InvalidOperationException("not yet") : ValueTask.CompletedTask;
        }, o => o.Retry = RetryPolicy.Intervals(Second)));

        await using (var connection = await RabbitMqNode.ConnectAsync())
        {
            await using var channel = await connection.CreateChannelAsync();
            var properties = new BasicProperties
            {
                Headers = new Dictionary<string, object?> { ["trace"] = new Dictionary<string, object?> { ["span"] = 7 } },
            };
            await channel.BasicPublishAsync("", queue, mandatory: false, properties, new JsonMessageSerializer().Serialize(new Order(1), typeof(Order)));
        }

        Assert.That(await Within(calls.Reader.ReadAsync(Patience).AsTask(), "the first attempt"), Is.EqualTo(1));
        Assert.That(
            await Within(calls.Reader.ReadAsync(Patience).AsTask(), "the retry after 1 s: the delayed nack threw ArgumentException (a table header), the worker ended and the message sits unacked"),
            Is.EqualTo(2));
    }

    // RabbitMqDelays.cs:64-82: a delay to a queue travels with the routing key "<28 bits>.q.<queue>", and RabbitMQ keeps
    // that key when the cascade dead-letters the message into the queue. When the queue then dead-letters it itself
    // (NackAsync(requeue: false), a plain reject, its TTL, its length limit, x-delivery-limit: RabbitMqConsumer.Settle.cs:
    // 47 and 99 send basic.nack/basic.reject) to a dead-letter exchange without a routing key of its own, RabbitMQ routes
    // the dead letter by that cascade key: a binding on the message's own key (the queue's name for a send) misses it
    // and the dead letter is dropped. Without the delay it arrives.
    [Test]
    public async Task ADelayedMessage_DeadLetteredByTheServer_IsRoutedByItsOwnRoutingKey()
    {
        var (work, dlx, dead) = (N("work"), N("dlx"), N("dead"));
        var broker = Build(b => b
            .AddExchange(dlx, ExchangeType.Direct)
            .AddQueue(dead)
            .Bind(dlx, dead, work) // a send to 'work' has the routing key 'work'
            .AddQueue(work, o => o.DeadLetterExchange = dlx));
        var consumer = Own(broker.Consume<Order>(work));

        await broker.SendAsync(work, new Order(1), new PublishOptions { Delay = Second });
        var delayed = await ReceiveAsync(consumer, "the delayed order");
        Assert.That((delayed.Message, delayed.RoutingKey), Is.EqualTo((new Order(1), work)));
        await delayed.NackAsync(requeue: false); // RabbitMQ dead-letters it

        await broker.SendAsync(work, new Order(2)); // the same without a delay, after it
        await (await ReceiveAsync(consumer, "the plain order")).NackAsync(requeue: false);

        var letters = Own(broker.Consume<Order>(dead));
        var first = await ReceiveAsync(letters, "a dead letter");
        Assert.That(first.Message, Is.EqualTo(new Order(1)), "the delayed order's dead letter never reached the dead-letter queue: it was routed by the cascade's key");
    }

    // RabbitMqProperties.FromAmqp (RabbitMqProperties.cs:128-157) removes the levels' x-death entries, but the death
    // RabbitMQ records when the queue itself dead-letters a delayed message names the exchange and routing keys the
    // cascade delivered it with ('mq.delay.l00'/'mq.delay.deliver' and "0.0.….q.<queue>"), and so does
    // x-first-death-exchange. On the in-memory broker (and without a delay) they are the message's own: '' and the queue.
    [Test]
    public async Task TheDeathOfADelayedMessage_NamesTheExchangeAndRoutingKeyItWasSentWith()
    {
        var (work, dead) = (N("work"), N("dead"));
        var broker = Build(b => b.AddQueue(dead).AddQueue(work, o => o.DeadLetterQueue = dead));
        var consumer = Own(broker.Consume<Order>(work));
        await broker.SendAsync(work, new Order(1), new PublishOptions { Delay = Second });
        await (await ReceiveAsync(consumer, "the delayed order")).RejectAsync(); // no reason: RabbitMQ dead-letters it

        var letter = await ReceiveAsync(Own(broker.Consume<Order>(dead)), "the dead letter");
        var death = letter.Properties.Deaths.Single();
        using (Assert.EnterMultipleScope())
        {
            Assert.That((death.Queue, death.Reason), Is.EqualTo((work, DeathRecord.Rejected)));
            Assert.That(death.Exchange, Is.EqualTo(""), "the death names the cascade's exchange");
            Assert.That(death.RoutingKeys, Is.EqualTo(new[] { work }), "the death names the cascade's routing key");
            Assert.That(letter.Properties.Headers["x-first-death-exchange"], Is.EqualTo(""));
        }
    }

    // RabbitMqTransport.cs:70 passes ConnectionTimeout to RabbitMqHttpApi, which sets it as HttpClient.Timeout
    // (RabbitMqHttpApi.cs:23); HttpClient takes at most int.MaxValue ms (~24.8 days), so with a ManagementUrl a long
    // ConnectionTimeout (60 days, accepted by UseRabbitMq and clamped for the AMQP connection since issue 18) makes
    // Build() throw ArgumentOutOfRangeException('value') that names neither option, against a reachable server.
    [Test]
    public void ALongConnectionTimeout_WithAManagementUrl_IsRefusedNamingTheOption_OrBuilds()
    {
        var management = Environment.GetEnvironmentVariable("MQ_RABBITMQ_MANAGEMENT_URL");
        if (string.IsNullOrWhiteSpace(management))
        {
            Assert.Ignore("MQ_RABBITMQ_MANAGEMENT_URL is not set.");
        }

        var queue = N("patient");
        var builder = new MessageBrokerBuilder().AddQueue(queue);
        try
        {
            builder.UseRabbitMq(RabbitMqNode.RequireUrl().ToString(), o =>
            {
                o.ConnectionTimeout = TimeSpan.FromDays(60);
                o.ManagementUrl = management;
            });
        }
        catch (ArgumentOutOfRangeException ex)
        {
            Assert.That(ex.Message, Does.Contain("ConnectionTimeout"));
            return;
        }

        IMessageBroker? broker = null;
        Assert.That(() => broker = Own(builder.Build()), Throws.Nothing, "the server and its management API are reachable; only the timeout is long");
        Assert.That(broker!.Management.GetQueueInfo(queue).Ready, Is.Zero);
    }

    // RabbitMqForwarder (RabbitMqForwarder.cs:26-43) consumes mq.delay.forward on one channel and never reopens it:
    // unlike a consumer (RabbitMqConsumer.OnShutdown/ReopenAsync), nothing watches its shutdown. When the server closes
    // that channel while the connection stays up - consumer_timeout while a forward's publish is held up (a resource
    // alarm blocks publishes; 30 minutes by default), or any channel error - every later delayed publish to an exchange
    // waits in mq.delay.forward until the process restarts. The test makes the server close it as consumer_timeout does.
    [Test]
    public async Task DelayedPublishesToAnExchange_AreForwarded_AfterTheServerClosedTheForwardersChannel()
    {
        var (exchange, queue) = (N("x"), N("q"));
        var broker = Build(b => b.AddExchange(exchange, ExchangeType.Direct).AddQueue(queue).Bind(exchange, queue, "k"));
        var delays = ((RabbitMqBroker)broker).Delays;
        await delays.EnsureDeclaredAsync(Patience);
        const BindingFlags flags = BindingFlags.Instance | BindingFlags.NonPublic;
        var forwarder = typeof(RabbitMqDelays).GetField("_forwarder", flags)!.GetValue(delays)!;
        var channel = (IChannel)typeof(RabbitMqForwarder).GetField("_channel", flags)!.GetValue(forwarder)!;
        var closed = new TaskCompletionSource<ushort>(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.ChannelShutdownAsync += (_, e) => { closed.TrySetResult(e.ReplyCode); return Task.CompletedTask; };
        await channel.BasicAckAsync(ulong.MaxValue / 2, multiple: false); // the server answers as consumer_timeout does
        Assert.That(await Within(closed.Task, "the server closing the forwarder's channel"), Is.EqualTo(Constants.PreconditionFailed));

        await broker.PublishAsync(exchange, "k", new Order(1), new PublishOptions { Delay = Second });
        var consumer = Own(broker.Consume<Order>(queue));
        var delivery = await ReceiveAsync(consumer, "the delayed publish to the exchange: it waits in mq.delay.forward, which nothing consumes any more");
        Assert.That(delivery.Message, Is.EqualTo(new Order(1)));
    }

    // A publish to an exchange that does not exist is a TopologyException (RabbitMqPublisher.cs:91-95; the in-memory
    // broker too), and so is a delayed send to a missing queue (RabbitMqDelays.EnsureBoundAsync). A delayed publish to a
    // missing exchange is accepted (RabbitMqDelays.PrepareAsync checks only queues) and confirmed, and the forwarder
    // drops it with a log line when it is due (RabbitMqForwarder.cs:54-57): a typo loses every delayed message silently.
    [Test]
    public async Task ADelayedPublish_ToAnExchangeThatDoesNotExist_IsRefused()
    {
        var missing = N("no-such-exchange");
        var broker = Build(b => b.AddQueue(N("q")));
        await Assert.ThatAsync(
            () => broker.PublishAsync(missing, "k", new Order(1), new PublishOptions { Delay = TimeSpan.FromMinutes(5) }).AsTask(),
            Throws.InstanceOf<TopologyException>());
    }
}
