using System.Text;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of the RabbitMQ transport's first parts: where it departs from the in-memory broker's documented
/// behaviour on the private node. Each test fails on the code as reviewed.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class RabbitMqReviewTests
{
    public sealed record Order(int Id, string Sku);

    private readonly string _prefix = $"mqr-{Guid.NewGuid():N}"[..16];
    private readonly List<string> _queues = [];
    private readonly List<string> _exchanges = [];
    private IConnection _connection = null!;
    private RabbitMqPublisher _publisher = null!;

    private string N(string name) => $"{_prefix}-{name}";

    [SetUp]
    public async Task ConnectAsync()
    {
        _connection = await RabbitMqNode.ConnectAsync();
        _publisher = new RabbitMqPublisher(_connection, new JsonMessageSerializer());
    }

    [TearDown]
    public async Task DeleteAsync()
    {
        if (_connection is null)
        {
            return;
        }

        await using (var channel = await _connection.CreateChannelAsync())
        {
            foreach (var queue in _queues)
            {
                await channel.QueueDeleteAsync(queue);
            }

            foreach (var exchange in _exchanges)
            {
                await channel.ExchangeDeleteAsync(exchange);
            }
        }

        await _publisher.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private Task DeclareAsync(params TopologyItem[] items)
    {
        foreach (var item in items)
        {
            switch (item)
            {
                case QueueItem q:
                    _queues.Add(q.Name);
                    break;
                case ExchangeItem e:
                    _exchanges.Add(e.Name);
                    break;
            }
        }

        return RabbitMqTopology.DeclareAsync(_connection, items);
    }

    private Task<PublishResult> SendAsync(string queue, object message, string id, IReadOnlyDictionary<string, object?>? headers = null) =>
        _publisher.PublishAsync("", queue, message, new MessageProperties { MessageId = id, Timestamp = DateTimeOffset.UtcNow, MessageType = message.GetType().FullName, Headers = headers ?? new Dictionary<string, object?>() }, mandatory: true, CancellationToken.None).AsTask();

    private Task<RabbitMqConsumer<TMessage>> ConsumeAsync<TMessage>(string queue, int prefetch = 32, AckMode ack = AckMode.Manual) =>
        RabbitMqConsumer<TMessage>.StartAsync(_connection, queue, new ConsumerOptions { Prefetch = prefetch, AckMode = ack }, new JsonMessageSerializer());

    private async Task<uint> MessageCountAsync(string queue)
    {
        await using var channel = await _connection.CreateChannelAsync();
        return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
    }

    private async Task<BasicGetResult?> GetAsync(string queue, int tries = 40)
    {
        await using var channel = await _connection.CreateChannelAsync();
        for (var i = 0; i < tries; i++)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
            {
                return got;
            }

            await Task.Delay(50);
        }

        return null;
    }

    // ---- topology ----

    // RabbitMQ 3.10 quorum queues do not support x-overflow = reject-publish-dlx: the server logs a warning and uses
    // drop-head. Refusals() lets it through, so a "reject the publish" queue silently drops its oldest message instead.
    [Test]
    public async Task AQuorumQueueWithRejectPublishDeadLetter_IsRefused_OrRefusesThePublish()
    {
        try
        {
            await DeclareAsync(
                new QueueItem(N("qdead"), new QueueOptions(), RabbitMqQueueType.Classic),
                new QueueItem(N("quorum"), new QueueOptions { Durable = true, MaxLength = 1, Overflow = OverflowPolicy.RejectPublishDeadLetter, DeadLetterQueue = N("qdead") }, RabbitMqQueueType.Quorum));
        }
        catch (TopologyException)
        {
            return; // refused: fine
        }

        await SendAsync(N("quorum"), new Order(1, "a"), "q-1");
        Assert.That(async () => await SendAsync(N("quorum"), new Order(2, "b"), "q-2"), Throws.InstanceOf<QueueFullException>(),
            "in memory (and on a classic queue) the second publish into a full RejectPublishDeadLetter queue is refused; the quorum queue dropped the first instead");
    }

    // Binding arguments go to the server raw, while message headers are encoded (Guid as a string with a type hint):
    // a headers binding on a Guid, which routes in memory, cannot even be declared (or never matches).
    [Test]
    public async Task AHeadersBindingOnAGuid_RoutesAMessageWithThatGuidHeader_AsInMemory()
    {
        var tenant = Guid.NewGuid();
        Assert.That(async () => await DeclareAsync(
            new ExchangeItem(N("hx"), ExchangeType.Headers, new ExchangeOptions()),
            new QueueItem(N("hq"), new QueueOptions(), RabbitMqQueueType.Classic),
            new BindingItem(N("hx"), N("hq"), ToExchange: false, "", new Dictionary<string, object?> { ["x-match"] = "all", ["tenant"] = tenant })), Throws.Nothing);

        var result = await _publisher.PublishAsync(N("hx"), "", new Order(1, "a"), new MessageProperties { MessageId = "h-1", Headers = new Dictionary<string, object?> { ["tenant"] = tenant } }, mandatory: false, CancellationToken.None);
        Assert.That(result.RoutedQueues, Is.EqualTo(1));
    }

    // README: in a headers binding "integers compare by value whatever their type". A ulong header travels as a string
    // (with a hint), so RabbitMQ never matches it against an integer argument.
    [Test]
    public async Task AULongHeader_MatchesAnIntegerBindingArgument_AsInMemory()
    {
        await DeclareAsync(
            new ExchangeItem(N("ux"), ExchangeType.Headers, new ExchangeOptions()),
            new QueueItem(N("uq"), new QueueOptions(), RabbitMqQueueType.Classic),
            new BindingItem(N("ux"), N("uq"), ToExchange: false, "", new Dictionary<string, object?> { ["x-match"] = "all", ["size"] = 5L }));

        var result = await _publisher.PublishAsync(N("ux"), "", new Order(1, "a"), new MessageProperties { MessageId = "u-1", Headers = new Dictionary<string, object?> { ["size"] = 5UL } }, mandatory: false, CancellationToken.None);
        Assert.That(result.RoutedQueues, Is.EqualTo(1));
    }

    // ---- properties ----

    // Another publisher's x-mq-header-types table (spoofed, or just another convention) whose hint does not fit the
    // value makes FromAmqp throw: the delivery's Properties cannot be read at all.
    [Test]
    public async Task AHintThatDoesNotFitItsValue_DoesNotMakeTheDeliverysPropertiesThrow()
    {
        await DeclareAsync(new QueueItem(N("hint"), new QueueOptions(), RabbitMqQueueType.Classic));
        await using (var raw = await _connection.CreateChannelAsync())
        {
            var props = new BasicProperties
            {
                MessageId = "spoof",
                Headers = new Dictionary<string, object?>
                {
                    ["tenant"] = "not a guid",
                    ["size"] = 300,
                    [RabbitMqProperties.TypesHeader] = new Dictionary<string, object?> { ["tenant"] = "guid", ["size"] = "u8" },
                },
            };
            await raw.BasicPublishAsync("", N("hint"), mandatory: true, props, Encoding.UTF8.GetBytes("""{"Id":1,"Sku":"a"}"""));
        }

        await using var consumer = await ConsumeAsync<Order>(N("hint"));
        var delivery = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        MessageProperties? properties = null;
        Assert.That(() => properties = delivery.Properties, Throws.Nothing);
        Assert.That(properties!.Headers["size"], Is.Not.EqualTo((byte)44), "300 is no byte: it must not wrap to 44");
    }

    // A header of the application's named like the type table is silently dropped (or replaced by the table).
    [Test]
    public async Task AHeaderNamedLikeTheTypeTable_IsRefused_OrComesBack()
    {
        var sent = new MessageProperties { MessageId = "t-1", Headers = new Dictionary<string, object?> { [RabbitMqProperties.TypesHeader] = "mine" } };
        BasicProperties amqp;
        try
        {
            amqp = RabbitMqProperties.ToAmqp(sent);
        }
        catch (ArgumentException)
        {
            return; // refused: fine
        }

        await DeclareAsync(new QueueItem(N("table"), new QueueOptions(), RabbitMqQueueType.Classic));
        await using (var raw = await _connection.CreateChannelAsync())
        {
            await raw.BasicPublishAsync("", N("table"), mandatory: true, amqp, new byte[] { 1 });
        }

        var got = await GetAsync(N("table"));
        Assert.That(got, Is.Not.Null);
        var back = RabbitMqProperties.FromAmqp(got!.BasicProperties);
        Assert.That(back.Headers, Does.ContainKey(RabbitMqProperties.TypesHeader), "the header was published and accepted, then vanished");
    }

    // ---- consumer ----

    // AckMode.Auto is "acknowledged when handed to your code" in memory. The consumer uses RabbitMQ's no-ack mode,
    // where the server ignores the prefetch and acks everything it pushes: what sits unread in the consumer's buffer
    // when it is disposed is lost instead of returning to the queue.
    [Test]
    public async Task DisposingAnAutoAckConsumer_ReturnsWhatItsCodeNeverReceived()
    {
        await DeclareAsync(new QueueItem(N("auto"), new QueueOptions(), RabbitMqQueueType.Classic));
        for (var i = 0; i < 10; i++)
        {
            await SendAsync(N("auto"), new Order(i, "a"), $"a-{i}");
        }

        var consumer = await ConsumeAsync<Order>(N("auto"), prefetch: 2, ack: AckMode.Auto);
        var first = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That(first.Message.Id, Is.Zero);
        // The server's own state, not a sleep: wait until it has pushed what it will (the window after the first; with
        // RabbitMQ's no-ack mode, everything).
        for (var i = 0; i < 100 && await MessageCountAsync(N("auto")) > 7; i++)
        {
            await Task.Yield();
        }

        await consumer.DisposeAsync();

        Assert.That(await MessageCountAsync(N("auto")), Is.GreaterThanOrEqualTo(8u), "only what the code received (and at most the prefetch window) may be gone");
    }

    // In memory a body that is not a T is dead-lettered whatever the ack mode; with RabbitMQ's no-ack mode the bad
    // message was already acked by the server, and the consumer just drops it.
    [Test]
    public async Task AnAutoAckConsumer_DeadLettersABodyThatIsNotItsType()
    {
        await DeclareAsync(
            new QueueItem(N("adead"), new QueueOptions(), RabbitMqQueueType.Classic),
            new QueueItem(N("awork"), new QueueOptions { DeadLetterQueue = N("adead") }, RabbitMqQueueType.Classic));
        await using (var raw = await _connection.CreateChannelAsync())
        {
            await raw.BasicPublishAsync("", N("awork"), mandatory: true, new BasicProperties { MessageId = "junk" }, Encoding.UTF8.GetBytes("not json"));
        }

        await SendAsync(N("awork"), new Order(1, "a"), "o-1");
        await using var consumer = await ConsumeAsync<Order>(N("awork"), ack: AckMode.Auto);
        var delivery = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That(delivery.Properties.MessageId, Is.EqualTo("o-1"));

        var dead = await GetAsync(N("adead"));
        Assert.That(dead?.BasicProperties.MessageId, Is.EqualTo("junk"), "the bad body must be dead-lettered, not dropped");
    }

    // IConsumer.ReceiveAsync: "TopologyException: the queue was deleted". RabbitMQ cancels the consumer (basic.cancel)
    // but the channel stays open, so nothing completes the buffer and ReceiveAsync waits forever.
    [Test]
    public async Task DeletingTheQueue_EndsAWaitingReceive_InsteadOfHangingIt()
    {
        await DeclareAsync(new QueueItem(N("gone"), new QueueOptions(), RabbitMqQueueType.Classic));
        await using var consumer = await ConsumeAsync<Order>(N("gone"));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CurrentContext.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var receiving = consumer.ReceiveAsync(timeout.Token).AsTask();
        Assert.That(receiving.IsCompleted, Is.False, "waiting on an empty queue");
        await using (var channel = await _connection.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(N("gone"));
        }

        Assert.That(async () => await receiving, Throws.InstanceOf<TopologyException>().Or.InstanceOf<ObjectDisposedException>(),
            "the receive must end when the queue is deleted, not wait until its token is cancelled");
    }

    // x-delivery-count is read from any message's headers, with Convert.ToInt64: a message another application
    // published with a string x-delivery-count (AMQP gives it back as bytes) throws in the client's callback; the
    // message is neither handed over nor rejected, so it sits unacked and the next one overtakes it.
    [Test]
    public async Task AForeignXDeliveryCountHeader_DoesNotSwallowTheMessage()
    {
        await DeclareAsync(new QueueItem(N("count"), new QueueOptions(), RabbitMqQueueType.Classic));
        await using (var raw = await _connection.CreateChannelAsync())
        {
            var props = new BasicProperties { MessageId = "foreign", Headers = new Dictionary<string, object?> { ["x-delivery-count"] = "3" } };
            await raw.BasicPublishAsync("", N("count"), mandatory: true, props, Encoding.UTF8.GetBytes("""{"Id":1,"Sku":"a"}"""));
        }

        await SendAsync(N("count"), new Order(2, "b"), "own");
        await using var consumer = await ConsumeAsync<Order>(N("count"));
        var first = await consumer.ReceiveAsync(TestContext.CurrentContext.CancellationToken);
        Assert.That(first.Properties.MessageId, Is.EqualTo("foreign"), "delivered first, in order");
    }
}
