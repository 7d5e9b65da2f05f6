using System.Collections;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Review of the publisher's own confirm tracking (RabbitMqConfirmChannel, RabbitMqPublisher): each test
/// shows a fault and fails on the code as reviewed. Names are unique per test and deleted afterwards.</summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class ConfirmReviewTests
{
    public sealed record Order(int Id);

    private const BindingFlags Private = BindingFlags.NonPublic | BindingFlags.Instance;

    private readonly List<string> _queues = [];
    private readonly List<string> _exchanges = [];
    private string _prefix = "";

    [SetUp]
    public void NewPrefix()
    {
        RabbitMqNode.RequireUrl();
        _prefix = $"crv{Guid.NewGuid():N}"[..11];
    }

    [TearDown]
    public async Task DeleteNamesAsync()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        foreach (var (name, queue) in _queues.Select(q => (q, true)).Concat(_exchanges.Select(x => (x, false))))
        {
            await using var channel = await connection.CreateChannelAsync();
            await (queue ? channel.QueueDeleteAsync(name) : channel.ExchangeDeleteAsync(name));
        }

        _queues.Clear();
        _exchanges.Clear();
    }

    private string Q(string name) => Add(_queues, name);

    private string X(string name) => Add(_exchanges, name);

    private string Add(List<string> names, string name)
    {
        names.Add($"{_prefix}-{name}");
        return $"{_prefix}-{name}";
    }

    private static MessageProperties Props(string id, string? header = null) => new()
    {
        MessageId = id,
        Headers = header is null ? new Dictionary<string, object?>() : new Dictionary<string, object?> { ["k"] = header },
    };

    private static Task<PublishResult> Publish(RabbitMqPublisher publisher, string exchange, string key, MessageProperties properties, bool mandatory = false, CancellationToken cancellationToken = default) =>
        publisher.PublishAsync(exchange, key, new Order(1), properties, mandatory, cancellationToken).AsTask();

    private static RabbitMqConfirmChannel[] ConfirmChannels(RabbitMqPublisher publisher) =>
        [.. ((RabbitMqConfirmChannel?[])typeof(RabbitMqPublisher).GetField("_channels", Private)!.GetValue(publisher)!).Select(c => c!)];

    private static T Field<T>(RabbitMqConfirmChannel channel, string name) => (T)typeof(RabbitMqConfirmChannel).GetField(name, Private)!.GetValue(channel)!;

    // RabbitMqConfirmChannel.cs:131-147 marks the OLDEST outstanding publish with the returned message's exchange,
    // routing key and message id. RabbitMQ sends basic.return as soon as routing finds no queue, but the ack of an
    // earlier routed publish only once its queue took it (for a persistent message in a durable queue, after the
    // fsync). Two publishes with the same id to a headers exchange (a retry with an idempotency key, a redrive), the
    // first routed by its headers and the second not: the return of the second marks the first, so the routed one
    // reports RoutedQueues 0 (UnroutableMessageException when Mandatory) and the one that reached no queue reports 1.
    [Test]
    public async Task AReturn_MarksThePublishItBelongsTo_NotAnEarlierRoutedOneWithTheSameId()
    {
        var (exchange, queue) = (X("hx"), Q("hq"));
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.ExchangeDeclareAsync(exchange, "headers", durable: true, autoDelete: false);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
            await channel.QueueBindAsync(queue, exchange, "", new Dictionary<string, object?> { ["x-match"] = "all", ["k"] = "a" });
        }

        for (var i = 0; i < RabbitMqPublisher.Channels; i++)
        {
            Assert.That((await Publish(publisher, exchange, "", Props("warm", "a"))).RoutedQueues, Is.EqualTo(1), "headers k=a route to the queue");
        }

        for (var round = 0; round < 10; round++)
        {
            // Round robin: every channel takes 20 routed publishes, then one unrouted, all with the same id.
            var routed = Enumerable.Range(0, 20 * RabbitMqPublisher.Channels).Select(_ => Publish(publisher, exchange, "", Props($"same-{round}", "a"))).ToArray();
            var unrouted = Enumerable.Range(0, RabbitMqPublisher.Channels).Select(_ => Publish(publisher, exchange, "", Props($"same-{round}", "b"))).ToArray();
            await Task.WhenAll(routed.Concat(unrouted));
            using (Assert.EnterMultipleScope())
            {
                Assert.That(routed.Select(t => t.Result.RoutedQueues), Is.All.EqualTo(1), $"round {round}: k=a reached the queue");
                Assert.That(unrouted.Select(t => t.Result.RoutedQueues), Is.All.EqualTo(0), $"round {round}: k=b reached no queue");
            }
        }
    }

    // A publish the server refuses with a channel error other than a missing exchange - here one to an internal
    // exchange (the passive check at RabbitMqPublisher.cs:116-132 passes: it exists) - is taken for "its channel closed
    // for another publish's error" (RabbitMqPublisher.cs:88-91): it is sent again 3 times, closing a shared channel
    // each time (failing every publish outstanding on it), and then RabbitMQ.Client's AlreadyClosedException escapes
    // instead of the broker's MessageQueueException.
    [Test]
    public async Task APublishTheServerRefuses_IsAMessageQueueException_NotAClientException()
    {
        var exchange = X("internal");
        await DeclareInternalExchangeAsync(exchange);
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());

        var ex = await Assert.CatchAsync(async () => await Publish(publisher, exchange, "k", Props("poison")));

        Assert.That(ex, Is.InstanceOf<MessageQueueException>(), $"{ex?.GetType().Name}: {ex?.Message}");
    }

    private static async Task DeclareInternalExchangeAsync(string name)
    {
        var management = Environment.GetEnvironmentVariable("MQ_RABBITMQ_MANAGEMENT_URL");
        if (string.IsNullOrWhiteSpace(management))
        {
            Assert.Ignore("MQ_RABBITMQ_MANAGEMENT_URL is not set (the test declares an internal exchange through it).");
        }

        using var http = new HttpClient { BaseAddress = new Uri(management!) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("guest:guest")));
        using var body = new StringContent("{\"type\":\"fanout\",\"durable\":false,\"auto_delete\":false,\"internal\":true,\"arguments\":{}}", Encoding.UTF8, "application/json");
        using var response = await http.PutAsync(new Uri($"api/exchanges/%2F/{name}", UriKind.Relative), body);
        response.EnsureSuccessStatusCode();
    }

    // RabbitMqPublisher.cs:97-100 checks an exchange on a channel of its own for every publish that finds it
    // unchecked, outside the MaxOutstanding limit: a burst of concurrent first publishes to an exchange (a service
    // starting under load) opens one channel per publish, past the connection's channel_max (2047), and the publishes
    // fail with the client's ChannelAllocationException although the exchange exists.
    [Test]
    public async Task ABurstOfFirstPublishesToAnExchange_DoesNotExhaustTheConnectionsChannels()
    {
        var exchange = X("burst");
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.ExchangeDeclareAsync(exchange, "fanout", durable: false, autoDelete: false);
        }

        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        var burst = Enumerable.Range(0, 3000).Select(i => Publish(publisher, exchange, "", Props($"b-{i}"))).ToArray();

        await Assert.ThatAsync(async () => await Task.WhenAll(burst), Throws.Nothing);
    }

    // RabbitMqPublisher.cs:102-111 frees the publish's MaxOutstanding slot as soon as the caller's token cancels the
    // wait for the confirm (RabbitMqConfirmChannel.cs:94), but the publish stays outstanding on its channel: callers
    // with timeouts against a slow server (acks held back) pile up publishes without the 4096 bound.
    [Test]
    public async Task CancelledWaits_DoNotLetMoreThanMaxOutstandingPublishesBeOutstanding()
    {
        var queue = Q("slow");
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        }

        await using var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        for (var i = 0; i < RabbitMqPublisher.Channels; i++)
        {
            await Publish(publisher, "", queue, Props("warm"));
        }

        var channels = ConfirmChannels(publisher);
        var (stalled, release) = (new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        foreach (var c in channels)
        {
            Field<IChannel>(c, "_channel").BasicAcksAsync += async (_, _) =>
            {
                stalled.TrySetResult();
                await release.Task; // the client's reader waits here: later acks stay unread (a slow server)
            };
        }

        try
        {
            await Publish(publisher, "", queue, Props("stall")); // confirmed (our handler runs after the transport's)
            await stalled.Task;

            using var impatient = new CancellationTokenSource();
            var first = Enumerable.Range(0, RabbitMqPublisher.MaxOutstanding).Select(i => Publish(publisher, "", queue, Props($"a-{i}"), cancellationToken: impatient.Token)).ToArray();
            await AllWrittenAsync(channels);
            await impatient.CancelAsync(); // every caller stops waiting for its confirm

            using var later = new CancellationTokenSource();
            var second = Enumerable.Range(0, 100).Select(i => Publish(publisher, "", queue, Props($"b-{i}"), cancellationToken: later.Token)).ToArray();
            await AllWrittenAsync(channels);
            var outstanding = channels.Sum(c => Field<ICollection>(c, "_pending").Count);
            await later.CancelAsync();
            release.TrySetResult();
            await Task.WhenAll(first.Concat(second).Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));

            Assert.That(outstanding, Is.LessThanOrEqualTo(RabbitMqPublisher.MaxOutstanding), "publishes outstanding on the channels at once");
        }
        finally
        {
            release.TrySetResult();
        }
    }

    // Waits until every publish queued for a channel's write lock has been written (its waiters are served in order).
    private static async Task AllWrittenAsync(RabbitMqConfirmChannel[] channels)
    {
        foreach (var c in channels)
        {
            var write = Field<SemaphoreSlim>(c, "_write");
            await write.WaitAsync();
            write.Release();
        }
    }

    // RabbitMqPublisher.DisposeAsync (RabbitMqPublisher.cs:195-213) breaks the channels under publishes in flight
    // (the old pool let them finish): each fails with RabbitMQ.Client's AlreadyClosedException ("a publish could not
    // be written", though it was written), which the catch at RabbitMqPublisher.cs:88 lets escape once _disposed is
    // set, instead of an ObjectDisposedException or a MessageQueueException.
    [Test]
    public async Task PublishesInFlightWhenThePublisherIsDisposed_FailWithTheBrokersExceptions()
    {
        var queue = Q("dispose");
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: false);
        }

        var publisher = new RabbitMqPublisher(connection, new JsonMessageSerializer());
        for (var i = 0; i < RabbitMqPublisher.Channels; i++)
        {
            await Publish(publisher, "", queue, Props("warm"));
        }

        var inFlight = Enumerable.Range(0, 200).Select(i => Publish(publisher, "", queue, Props($"d-{i}"))).ToArray();
        await publisher.DisposeAsync();

        var escaped = new List<string>();
        foreach (var publish in inFlight)
        {
            try
            {
                await publish;
            }
            catch (Exception ex) when (ex is not (ObjectDisposedException or MessageQueueException))
            {
                escaped.Add($"{ex.GetType().Name}: {ex.Message}");
            }
        }

        Assert.That(escaped, Is.Empty, "exceptions of other types than ObjectDisposedException and MessageQueueException");
    }
}
