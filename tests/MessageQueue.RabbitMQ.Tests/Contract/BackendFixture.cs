using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests.Contract;

/// <summary>
/// A fixture that runs the same test on one backend: the in-memory broker or the RabbitMQ transport on the private
/// node (<see cref="RabbitMqNode"/>; skipped with the reason when there is none). Names go through <see cref="N"/>,
/// which prefixes them with the test's own prefix, so tests never share a queue on the server; after each test the
/// brokers are disposed and everything <see cref="N"/> named is deleted on the server.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public abstract class BackendFixture
{
    private readonly List<IMessageBroker> _brokers = [];
    private readonly HashSet<string> _names = [];
    private string _prefix = "";

    /// <summary>Gets whether this fixture runs on RabbitMQ.</summary>
    protected abstract bool OnRabbitMq { get; }

    /// <summary>Gets the node this fixture's brokers run on (the test node; the restart tests have one of their own), or
    /// marks the test skipped saying how to get one.</summary>
    protected virtual Uri NodeUrl => RabbitMqNode.RequireUrl();

    /// <summary>Gets the backend's name, for transcripts and messages.</summary>
    protected string BackendName => OnRabbitMq ? "RabbitMQ" : "in-memory";

    /// <summary>Gets a token that ends waits that would otherwise hang (10 seconds, or the test's cancellation).</summary>
    protected CancellationToken Patience { get; private set; }

    private CancellationTokenSource? _patience;

    [SetUp]
    public void NewPrefix()
    {
        _prefix = $"t{Guid.NewGuid():N}"[..9];
        _names.Clear();
        _patience = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CurrentContext.CancellationToken);
        _patience.CancelAfter(TimeSpan.FromSeconds(20));
        Patience = _patience.Token;
        if (OnRabbitMq)
        {
            _ = NodeUrl;
        }
    }

    [TearDown]
    public async Task CleanUpAsync()
    {
        foreach (var broker in _brokers)
        {
            await broker.DisposeAsync();
        }

        _brokers.Clear();
        _patience?.Dispose();
        if (OnRabbitMq && _names.Count > 0)
        {
            await using var connection = await new ConnectionFactory { Uri = NodeUrl }.CreateConnectionAsync();
            foreach (var name in _names)
            {
                await using var channel = await connection.CreateChannelAsync();
                await channel.QueueDeleteAsync(name);
                await channel.ExchangeDeleteAsync(name);
            }
        }
    }

    /// <summary>A name of this test's own (queues and exchanges).</summary>
    protected string N(string name)
    {
        var full = $"{_prefix}-{name}";
        _names.Add(full);
        return full;
    }

    /// <summary>Builds a broker on this fixture's backend from <paramref name="topology"/>.</summary>
    protected IMessageBroker Build(Action<MessageBrokerBuilder> topology, Action<RabbitMqOptions>? rabbit = null)
    {
        var builder = new MessageBrokerBuilder();
        topology(builder);
        if (OnRabbitMq)
        {
            builder.UseRabbitMq(NodeUrl.ToString(), rabbit);
        }

        var broker = builder.Build();
        _brokers.Add(broker);
        return broker;
    }

    /// <summary>Receives one delivery, or fails the test after <see cref="Patience"/>.</summary>
    protected async Task<Delivery<T>> ReceiveAsync<T>(IConsumer<T> consumer)
    {
        try
        {
            return await consumer.ReceiveAsync(Patience);
        }
        catch (OperationCanceledException) when (Patience.IsCancellationRequested)
        {
            Assert.Fail($"No message arrived in queue '{consumer.Queue}' in time ({BackendName}).");
            throw;
        }
    }

    /// <summary>Receives <paramref name="count"/> deliveries and acks each.</summary>
    protected async Task<List<T>> ReceiveAndAckAsync<T>(IConsumer<T> consumer, int count)
    {
        var list = new List<T>();
        for (var i = 0; i < count; i++)
        {
            var d = await ReceiveAsync(consumer);
            list.Add(d.Message);
            await d.AckAsync();
        }

        return list;
    }
}
