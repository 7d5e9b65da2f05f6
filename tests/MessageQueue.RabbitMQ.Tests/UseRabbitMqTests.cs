using MessageQueue.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, point 1 (set-up) and the quorum parts of points 2 and 4: <c>UseRabbitMq</c> on the builder and in
/// dependency injection; <c>Build()</c> declares idempotently, turns a conflict with the server into a
/// <see cref="TopologyException"/> naming the item and both settings, and refuses what RabbitMQ cannot honour all at
/// once, before it connects.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class UseRabbitMqTests
{
    private const string Nowhere = "amqp://guest:s3cret@127.0.0.1:5999/"; // nothing listens there

    public sealed record Order(int Id);

    private readonly string _prefix = $"u{Guid.NewGuid():N}"[..9];

    private string N(string name) => $"{_prefix}-{name}";

    [TearDown]
    public async Task DeleteAsync()
    {
        if (Environment.GetEnvironmentVariable(RabbitMqNode.Variable) is not { Length: > 0 })
        {
            return;
        }

        await using var connection = await RabbitMqNode.ConnectAsync();
        foreach (var name in new[] { "q", "dead", "quorum", "handled" })
        {
            await using var channel = await connection.CreateChannelAsync();
            await channel.QueueDeleteAsync(N(name));
        }
    }

    [Test]
    public void Refusals_AreReportedAllAtOnce_BeforeConnecting()
    {
        var builder = new MessageBrokerBuilder()
            .AddQueue("blocking", o => { o.MaxLength = 5; o.Overflow = OverflowPolicy.Block; })
            .AddQueue("dedup", o => o.DeduplicationWindow = TimeSpan.FromMinutes(1))
            .AddQueue("limited", o => o.MaxDeliveryCount = 3)
            .AddQueue("fine")
            .UseRabbitMq(Nowhere, o => o.QueueType("fine", RabbitMqQueueType.Quorum));
        var ex = Assert.Throws<TopologyException>(() => builder.Build());
        Assert.Multiple(() =>
        {
            Assert.That(ex!.Problems, Has.Count.EqualTo(4), string.Join("\n", ex.Problems));
            Assert.That(ex.Problems, Has.One.Contains("'blocking'").And.Contains("Overflow = Block"));
            Assert.That(ex.Problems, Has.One.Contains("'dedup'").And.Contains("DeduplicationWindow"));
            Assert.That(ex.Problems, Has.One.Contains("'limited'").And.Contains("quorum"));
            Assert.That(ex.Problems, Has.One.Contains("'fine'").And.Contains("Durable = false"), "a quorum queue is durable");
        });
    }

    [Test]
    public void BadUrls_AreRefusedWhenSet()
    {
        var builder = new MessageBrokerBuilder();
        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentException>(() => builder.UseRabbitMq(""));
            Assert.Throws<ArgumentException>(() => builder.UseRabbitMq("http://localhost/"));
            Assert.Throws<ArgumentException>(() => builder.UseRabbitMq("not a url"));
            Assert.Throws<ArgumentOutOfRangeException>(() => builder.UseRabbitMq(Nowhere, o => o.ConnectionTimeout = TimeSpan.Zero));
        });
    }

    [Test]
    public void AnUnreachableServer_IsNamed_WithoutThePassword()
    {
        var ex = Assert.Throws<MessageQueueException>(() => new MessageBrokerBuilder().AddQueue("q").UseRabbitMq(Nowhere).Build());
        Assert.That(ex!.Message, Does.Contain("127.0.0.1:5999").And.Not.Contain("s3cret"));
    }

    [Test]
    public void AStoreAndATransport_AreRefusedTogether()
    {
        var builder = new MessageBrokerBuilder().AddQueue("q").UseSqlite(Path.Combine(Path.GetTempPath(), $"{_prefix}.db")).UseRabbitMq(Nowhere);
        var ex = Assert.Throws<TopologyException>(() => builder.Build());
        Assert.That(ex!.Message, Does.Contain("UseRabbitMq").And.Contain("store"));
    }

    [Test]
    public async Task Build_DeclaresIdempotently_AndAConflictNamesTheItemAndBothSettings()
    {
        var url = RabbitMqNode.RequireUrl().ToString();
        await (new MessageBrokerBuilder().AddQueue(N("q"), o => o.MaxLength = 10).UseRabbitMq(url).Build()).DisposeAsync();
        await (new MessageBrokerBuilder().AddQueue(N("q"), o => o.MaxLength = 10).UseRabbitMq(url).Build()).DisposeAsync(); // the same again

        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder().AddQueue(N("q"), o => o.MaxLength = 20).UseRabbitMq(url).Build());
        Assert.That(ex!.Message, Does.Contain(N("q")).And.Contain("x-max-length").And.Contain("20").And.Contain("10"));
    }

    [Test]
    public async Task QuorumQueue_CountsDeliveries_AndItsDeliveryLimitDeadLettersAsInMemory()
    {
        var url = RabbitMqNode.RequireUrl().ToString();
        await using var broker = new MessageBrokerBuilder()
            .AddQueue(N("dead"))
            .AddQueue(N("quorum"), o => { o.Durable = true; o.MaxDeliveryCount = 2; o.DeadLetterQueue = N("dead"); })
            .UseRabbitMq(url, o => o.QueueType(N("quorum"), RabbitMqQueueType.Quorum))
            .Build();
        await broker.SendAsync(N("quorum"), new Order(1));
        await using var consumer = broker.Consume<Order>(N("quorum"), o => o.Prefetch = 1);
        var token = TestContext.CurrentContext.CancellationToken;
        var first = await consumer.ReceiveAsync(token);
        await first.NackAsync();
        var second = await consumer.ReceiveAsync(token);
        Assert.That((first.DeliveryCount, second.DeliveryCount), Is.EqualTo((1, 2)));
        await second.NackAsync(); // the second delivery was the last one MaxDeliveryCount = 2 allows, as in memory

        await using var dead = broker.Consume<Order>(N("dead"));
        var letter = await dead.ReceiveAsync(token);
        Assert.That(letter.Properties.Deaths[0].Reason, Is.EqualTo(DeathRecord.DeliveryLimit));
        Assert.That(consumer.TryReceive(out _), Is.False);
    }

    [Test]
    public async Task DependencyInjection_RunsHandlersOnRabbitMq()
    {
        var url = RabbitMqNode.RequireUrl().ToString();
        var handled = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(handled);
        builder.Services.AddMessageQueue(mq => mq.AddQueue(N("handled")).AddHandler<Order, OrderHandler>(N("handled")).UseRabbitMq(url));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            await host.Services.GetRequiredService<IProducer>().SendAsync(N("handled"), new Order(42));
            Assert.That(await handled.Task.WaitAsync(TestContext.CurrentContext.CancellationToken), Is.EqualTo(42));
            Assert.That(host.Services.GetRequiredService<IMessageBroker>().GetType().Name, Is.EqualTo("RabbitMqBroker"));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Test]
    public async Task TheTestHarness_StaysInMemory()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q", o => o.Durable = true).UseRabbitMq(Nowhere));
        await harness.Broker.SendAsync("q", new Order(1));
        Assert.That(harness.Published.All, Has.Count.EqualTo(1));
        Assert.That(harness.Broker.GetType().Name, Is.EqualTo("MessageBroker"));
    }

    public sealed class OrderHandler(TaskCompletionSource<int> handled) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken)
        {
            handled.TrySetResult(delivery.Message.Id);
            return ValueTask.CompletedTask;
        }
    }
}
