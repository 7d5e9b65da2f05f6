using System.Text;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

/// <summary>Topology and options from configuration (<c>appsettings.json</c>), merged with code; invalid values named
/// by their configuration path.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class ConfigurationTests
{
    private static IConfiguration Json(string json) =>
        new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();

    private static IHost Host(string json, Action<MessageBrokerBuilder> code, string? name = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(Json(json));
        if (name is null)
        {
            builder.Services.AddMessageQueue(code);
        }
        else
        {
            builder.Services.AddMessageQueue(name, code);
        }

        return builder.Build();
    }

    private const string AppSettings = """
        {
          "MessageQueue": {
            "Exchanges": { "orders": { "Type": "Topic" } },
            "Queues": {
              "billing": { "MaxLength": 1, "Overflow": "RejectPublish", "MessageTtl": "01:00:00",
                           "Redelivery": { "Kind": "Exponential", "MaxRetries": 3, "MinInterval": "00:00:01", "MaxInterval": "00:00:10" } },
              "audit": { "DeadLetterQueue": "billing", "AckTimeout": "Infinite" }
            },
            "Bindings": [ { "Exchange": "orders", "Queue": "billing", "RoutingKey": "order.*" } ],
            "ShutdownTimeout": "00:00:05"
          }
        }
        """;

    [Test]
    public async Task AppSettings_DeclareAndTune_MergedWithCode()
    {
        using var host = Host(AppSettings, mq => mq.AddQueue("billing", q => q.SingleActiveConsumer = true));
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        var billing = broker.Engine().Context.Topology.GetQueue("billing").Options;
        var audit = broker.Engine().Context.Topology.GetQueue("audit").Options;

        var routed = await broker.PublishAsync("orders", "order.created", new Order(1));
        var full = await Assert.ThrowsAsync<QueueFullException>(async () => await broker.PublishAsync("orders", "order.created", new Order(2)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(routed.RoutedQueues, Is.EqualTo(1), "exchange and binding from configuration");
            Assert.That(full!.Message, Does.Contain("MaxLength = 1"), "the limit configured for a queue declared in code");
            Assert.That(billing.SingleActiveConsumer, Is.True, "code's options stay");
            Assert.That(billing.MessageTtl, Is.EqualTo(TimeSpan.FromHours(1)));
            Assert.That(billing.Redelivery, Is.EqualTo(RetryPolicy.Exponential(3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10))));
            Assert.That((audit.DeadLetterQueue, audit.AckTimeout), Is.EqualTo(("billing", (TimeSpan?)Timeout.InfiniteTimeSpan)), "a queue only configured is declared");
            Assert.That(broker.Engine().ShutdownTimeout, Is.EqualTo(TimeSpan.FromSeconds(5)));
        }

        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task InvalidValues_FailTheStart_EachNamedByItsConfigurationPath()
    {
        const string bad = """
            {
              "MessageQueue": {
                "Exchanges": { "orders": { "Type": "Tropic" }, "nothing": { } },
                "Queues": {
                  "billing": { "MaxLength": "lots", "Overflow": "Explode", "MaxLenght": 5, "MessageTtl": "an hour",
                               "Redelivery": { "Kind": "Exponential", "MaxRetries": 3 } }
                },
                "Bindings": [ { "Exchange": "orders" } ],
                "Storage": { "LazyWindow": 0 }
              }
            }
            """;
        using var host = Host(bad, _ => { });

        var ex = await Assert.ThrowsAsync<TopologyException>(() => host.StartAsync());

        Assert.That(ex!.Problems, Is.SupersetOf(new[]
        {
            "MessageQueue:Exchanges:orders:Type: 'Tropic' is not one of Direct, Fanout, Topic, Headers.",
            "MessageQueue:Exchanges:nothing:Type is missing; it is one of Direct, Fanout, Topic, Headers.",
            "MessageQueue:Queues:billing:MaxLength: 'lots' is not a whole number.",
            "MessageQueue:Queues:billing:Overflow: 'Explode' is not one of DropHead, RejectPublish, RejectPublishDeadLetter, Block.",
            "MessageQueue:Queues:billing:MessageTtl: 'an hour' is not a duration ([d.]hh:mm:ss[.fff], or Infinite).",
            "MessageQueue:Queues:billing:Redelivery: a Exponential policy needs MaxRetries, MinInterval and MaxInterval.",
            "MessageQueue:Bindings:0: a binding names its Exchange and either a Queue or a ToExchange.",
        }));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Problems, Has.Some.StartsWith("MessageQueue:Queues:billing:MaxLenght: 'MaxLenght' is not a queue option"));
            Assert.That(ex.Problems, Has.Some.StartsWith("Storage options:").And.Contains("LazyWindow"));
        }
    }

    [Test]
    public async Task ANamedBroker_ReadsItsOwnSection()
    {
        const string json = """
            { "MessageQueue": { "Brokers": { "tenant-a": { "Queues": { "q": { "MaxLength": 5 } } } } } }
            """;
        using var host = Host(json, _ => { }, name: "tenant-a");
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredKeyedService<IMessageBroker>("tenant-a");
        Assert.That(broker.Engine().Context.Topology.GetQueue("q").Options.MaxLength, Is.EqualTo(5));
        await host.StopAsync().WithSafety();
    }

    [Test]
    public async Task UseSqlite_FromConfiguration_KeepsDurableQueuesInTheConfiguredFile_AndNamesBadValues()
    {
        var database = Path.Combine(Path.GetTempPath(), $"mq-config-{Guid.NewGuid():N}.db");
        IHost Start() => HostWith(new Dictionary<string, string?>
        {
            ["MessageQueue:Queues:q:Durable"] = "true",
            ["MessageQueue:Sqlite:Database"] = database,
            ["MessageQueue:Sqlite:Synchronous"] = "Normal",
        });
        try
        {
            await SentBeforeARestart_IsThereAfterIt(Start);

            using var bad = HostWith(new Dictionary<string, string?> { ["MessageQueue:Sqlite:Synchronous"] = "Sometimes", ["MessageQueue:Sqlite:Databse"] = database });
            var ex = await Assert.ThrowsAsync<TopologyException>(() => bad.StartAsync());
            Assert.That(ex!.Problems, Is.EquivalentTo(new[]
            {
                "MessageQueue:Sqlite:Databse: 'Databse' is not a SQLite store option; known: Database, Synchronous, BusyTimeout, OwnerWaitTimeout, LazyWindow, MaxBatchSize, AckDelay.",
                "MessageQueue:Sqlite:Database is missing: the SQLite file path or connection string.",
                "MessageQueue:Sqlite:Synchronous: 'Sometimes' is not one of Full, Normal.",
            }));
        }
        finally
        {
            DeleteStoreFiles(database);
        }
    }

    [Test]
    public async Task UseLiteDb_FromConfiguration_KeepsDurableQueuesInTheConfiguredFile_AndNamesBadValues()
    {
        var database = Path.Combine(Path.GetTempPath(), $"mq-config-{Guid.NewGuid():N}.db");
        IHost Start() => HostWith(
            new Dictionary<string, string?>
            {
                ["MessageQueue:Queues:q:Durable"] = "true",
                ["MessageQueue:LiteDB:Database"] = database,
                ["MessageQueue:LiteDB:Synchronous"] = "Normal",
                ["MessageQueue:LiteDB:CheckpointPages"] = "100",
            },
            LiteDbFromConfiguration);
        try
        {
            await SentBeforeARestart_IsThereAfterIt(Start);

            using var bad = HostWith(
                new Dictionary<string, string?> { ["MessageQueue:LiteDB:Synchronous"] = "Sometimes", ["MessageQueue:LiteDB:CheckpointPages"] = "many" },
                LiteDbFromConfiguration);
            var ex = await Assert.ThrowsAsync<TopologyException>(() => bad.StartAsync());
            Assert.That(ex!.Problems, Is.EquivalentTo(new[]
            {
                "MessageQueue:LiteDB:Database is missing: the LiteDB file path or connection string.",
                "MessageQueue:LiteDB:Synchronous: 'Sometimes' is not one of Full, Normal.",
                "MessageQueue:LiteDB:CheckpointPages: 'many' is not a whole number.",
            }));
        }
        finally
        {
            DeleteStoreFiles(database);
        }
    }

    private static void LiteDbFromConfiguration(IServiceProvider services, MessageBrokerBuilder mq) =>
        mq.UseLiteDb(services.GetRequiredService<IConfiguration>().GetSection("MessageQueue:LiteDB"));

    /// <summary>A message sent to the durable queue "q" through one host is there in the next host on the same file.</summary>
    private static async Task SentBeforeARestart_IsThereAfterIt(Func<IHost> start)
    {
        using (var host = start())
        {
            await host.StartAsync().WithSafety();
            await host.Services.GetRequiredService<IProducer>().SendAsync("q", new Order(1)).AsTask().WithSafety();
            await host.StopAsync().WithSafety();
        }

        using var again = start();
        await again.StartAsync().WithSafety();
        Assert.That((await again.Services.GetRequiredService<IBrokerManagement>().PeekAsync("q")).Select(m => m.Body), Is.EqualTo(new object[] { new Order(1) }));
        await again.StopAsync().WithSafety();
    }

    /// <summary>Deletes a store's files, SQLite's or LiteDB's, and the owner lock.</summary>
    private static void DeleteStoreFiles(string database)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var file in new[] { database, database + "-wal", database + "-shm", MessageQueue.LiteDb.LiteDbMessageStore.LogFileOf(database), database + ".lock", database + ".owner" })
        {
            File.Delete(file);
        }
    }

    private static IHost HostWith(Dictionary<string, string?> settings, Action<IServiceProvider, MessageBrokerBuilder>? store = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddMessageQueue(store ?? ((sp, mq) => mq.UseSqlite(sp.GetRequiredService<IConfiguration>().GetSection("MessageQueue:Sqlite"))));
        return builder.Build();
    }

    [Test]
    public void AddConfiguration_WorksWithoutDependencyInjection()
    {
        using var broker = new MessageBrokerBuilder().AddConfiguration(Json(AppSettings).GetSection("MessageQueue")).Build();
        Assert.That(broker.Management.GetQueueNames(), Is.EqualTo(new[] { "audit", "billing" }));
    }
}
