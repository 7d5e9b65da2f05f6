using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MessageQueue.Benchmarks.Infrastructure;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Issue 19, point 7: the RabbitMQ transport (<c>UseRabbitMq</c>) against raw RabbitMQ.Client doing the same work on
/// the same server (<see cref="RabbitMqPeer.Url"/>): an object serialized as JSON and published with a publisher
/// confirm, one outstanding and a hundred outstanding; a queue of such messages consumed with manual acks and
/// prefetch 100, each deserialized. Queues are classic and not durable (the server's disk is not what is measured);
/// the transport's messages are persistent as its default, the raw ones too. Each operation moves
/// <see cref="Messages"/> messages; the table reports per message.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class TransportBenchmarks
{
    public const int Messages = 2_000;
    private const int Outstanding = 100;

    public sealed record Order(int Id, string Sku, int Quantity);

    /// <summary>Gets or sets how many times <see cref="Messages"/> each row moves (1 for the timed runs; more for
    /// <c>--allocations</c>, whose counts lose less over a longer window).</summary>
    public int Scale { get; set; } = 1;

    private int Count => Messages * Scale;

    private readonly Order _order = new(42, "lamp", 2);
    // The properties the transport's messages carry (id, type, timestamp, persistent), so the client encodes and
    // decodes the same fields in both rows; the raw id is one string, where the transport makes one per message.
    private readonly BasicProperties _properties = new()
    {
        Persistent = true,
        Type = "Order",
        MessageId = Guid.NewGuid().ToString("N"),
        Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
    };
    private IConnection _connection = null!;
    private IChannel _publisher = null!;
    private IMessageBroker _broker = null!;
    private string _rawQueue = "";
    private string _queue = "";

    [GlobalSetup]
    public void Setup()
    {
        if (_broker is not null)
        {
            return; // the interleaved runner calls it for each row
        }

        var id = Guid.NewGuid().ToString("N")[..8];
        (_rawQueue, _queue) = ($"bench-raw-{id}", $"bench-mq-{id}");
        _connection = RabbitMqPeer.ConnectAsync().GetAwaiter().GetResult();
        _publisher = _connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)).GetAwaiter().GetResult();
        _publisher.QueueDeclareAsync(_rawQueue, durable: false, exclusive: false, autoDelete: false).GetAwaiter().GetResult();
        _broker = new MessageBrokerBuilder().AddQueue(_queue).UseRabbitMq(RabbitMqPeer.Url.ToString()).Build();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_connection is not { IsOpen: true })
        {
            return; // once, however often it is called
        }

        _publisher.QueueDeleteAsync(_rawQueue).GetAwaiter().GetResult();
        _publisher.QueueDeleteAsync(_queue).GetAwaiter().GetResult();
        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _publisher.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [IterationSetup(Targets = [nameof(RawPublishOne), nameof(TransportPublishOne), nameof(RawPublishHundred), nameof(TransportPublishHundred)])]
    public void Empty()
    {
        _publisher.QueuePurgeAsync(_rawQueue).GetAwaiter().GetResult();
        _publisher.QueuePurgeAsync(_queue).GetAwaiter().GetResult();
    }

    [IterationSetup(Targets = [nameof(RawConsume), nameof(TransportConsume), nameof(RawConsumeAgain)])]
    public void Fill()
    {
        Empty();
        RawPublishHundred().GetAwaiter().GetResult();
        TransportPublishHundred().GetAwaiter().GetResult();
    }

    [RequiresRabbitMq, BenchmarkCategory("publish, 1 outstanding"), Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw RabbitMQ.Client")]
    public async Task RawPublishOne()
    {
        for (var i = 0; i < Count; i++)
        {
            await _publisher.BasicPublishAsync("", _rawQueue, mandatory: true, _properties, JsonSerializer.SerializeToUtf8Bytes(_order)).ConfigureAwait(false);
        }
    }

    [RequiresRabbitMq, BenchmarkCategory("publish, 1 outstanding"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue on RabbitMQ")]
    public async Task TransportPublishOne()
    {
        for (var i = 0; i < Count; i++)
        {
            await _broker.SendAsync(_queue, _order).ConfigureAwait(false);
        }
    }

    [RequiresRabbitMq, BenchmarkCategory("publish, 100 outstanding"), Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw RabbitMQ.Client")]
    public async Task RawPublishHundred()
    {
        var pending = new Queue<ValueTask>(Outstanding);
        for (var i = 0; i < Count; i++)
        {
            if (pending.Count == Outstanding)
            {
                await pending.Dequeue().ConfigureAwait(false);
            }

#pragma warning disable CA2012 // each is awaited once, in order
            pending.Enqueue(_publisher.BasicPublishAsync("", _rawQueue, mandatory: true, _properties, JsonSerializer.SerializeToUtf8Bytes(_order)));
#pragma warning restore CA2012
        }

        while (pending.Count > 0)
        {
            await pending.Dequeue().ConfigureAwait(false);
        }
    }

    [RequiresRabbitMq, BenchmarkCategory("publish, 100 outstanding"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue on RabbitMQ")]
    public async Task TransportPublishHundred()
    {
        var pending = new Queue<ValueTask<PublishResult>>(Outstanding);
        for (var i = 0; i < Count; i++)
        {
            if (pending.Count == Outstanding)
            {
                await pending.Dequeue().ConfigureAwait(false);
            }

#pragma warning disable CA2012 // each is awaited once, in order
            pending.Enqueue(_broker.SendAsync(_queue, _order));
#pragma warning restore CA2012
        }

        while (pending.Count > 0)
        {
            await pending.Dequeue().ConfigureAwait(false);
        }
    }

    [RequiresRabbitMq, BenchmarkCategory("consume, manual ack, prefetch 100"), Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "raw RabbitMQ.Client")]
    public async Task RawConsume()
    {
        await using var channel = await _connection.CreateChannelAsync().ConfigureAwait(false);
        await channel.BasicQosAsync(0, 100, global: false).ConfigureAwait(false);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = 0;
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, e) =>
        {
            GC.KeepAlive(JsonSerializer.Deserialize<Order>(e.Body.Span));
            await channel.BasicAckAsync(e.DeliveryTag, multiple: false).ConfigureAwait(false);
            if (++received == Count)
            {
                done.TrySetResult();
            }
        };
        var tag = await channel.BasicConsumeAsync(_rawQueue, autoAck: false, consumer).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        await channel.BasicCancelAsync(tag).ConfigureAwait(false);
    }

    [RequiresRabbitMq, BenchmarkCategory("consume, manual ack, prefetch 100"), Benchmark(OperationsPerInvoke = Messages, Description = "MessageQueue on RabbitMQ")]
    public async Task TransportConsume()
    {
        await using var consumer = _broker.Consume<Order>(_queue, o => o.Prefetch = 100);
        for (var i = 0; i < Count; i++)
        {
            var delivery = await consumer.ReceiveAsync().ConfigureAwait(false);
            await delivery.AckAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The raw row again (an A/A pair): how far apart two identical rows read in the same rounds, the noise
    /// floor against which the transport's ratio is read (consume shares the two cores with the server).</summary>
    [RequiresRabbitMq, BenchmarkCategory("consume, manual ack, prefetch 100"), Benchmark(OperationsPerInvoke = Messages, Description = "raw RabbitMQ.Client again (A/A)")]
    public Task RawConsumeAgain() => RawConsume();
}
