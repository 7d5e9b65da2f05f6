using System.Collections.Concurrent;
using System.Diagnostics;
using MessageQueue.RabbitMQ.Tests.Contract;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 3: the RabbitMQ application restarted (<c>rabbitmqctl stop_app</c>, <c>start_app</c>, on the
/// test node <c>MQ_RABBITMQ_NODE_DIR</c> names) while a publisher and a subscription run: publishes made during the
/// outage wait for the connection and go through, the subscription resumes, and every confirmed message is handled
/// (duplicates only by redelivery, counted); a publish that cannot wait long enough fails saying why. (Dropped
/// connections without a restart: <c>Issue18ReviewTests</c>, through a TCP proxy.)</summary>
[CancelAfter(120_000)]
public sealed class RecoveryTests : BackendFixture
{
    public sealed record Order(int Id);

    protected override bool OnRabbitMq => true;

    protected override Uri NodeUrl => RestartUrl;

    /// <summary>The node the restart tests may restart: a second one (<c>MQ_RABBITMQ_RESTART_URL</c>), so that the other
    /// test projects, which run meanwhile, keep theirs.</summary>
    internal static Uri RestartUrl
    {
        get
        {
            var url = Environment.GetEnvironmentVariable("MQ_RABBITMQ_RESTART_URL");
            if (string.IsNullOrWhiteSpace(url))
            {
                Assert.Ignore("No RabbitMQ node to restart: MQ_RABBITMQ_RESTART_URL and MQ_RABBITMQ_NODE_DIR are not set (start one with 'MQ_NODE_OFFSET=3 scripts/rabbitmq-node.sh start /tmp/mq-restart' and set them to the URL it prints and that folder; .ci/run does both).");
            }

            return new Uri(url!);
        }
    }

    internal static string RequireNode()
    {
        _ = RestartUrl;
        var dir = Environment.GetEnvironmentVariable("MQ_RABBITMQ_NODE_DIR");
        if (string.IsNullOrWhiteSpace(dir))
        {
            Assert.Ignore("No restartable RabbitMQ node: MQ_RABBITMQ_NODE_DIR is not set (.ci/run sets it to the folder of the second node scripts/rabbitmq-node.sh started).");
        }

        return dir!;
    }

    /// <summary>Runs <c>rabbitmqctl</c> on the test node.</summary>
    internal static Task CtlAsync(string dir, params string[] args) => NodeScripts.RunAsync("rabbitmq-node.sh", ["ctl", dir, .. args]);

    [Test]
    public async Task ARestartOfTheServer_WhilePublishingAndConsuming_LosesNoConfirmedMessage()
    {
        var dir = RequireNode();
        var broker = Build(b => b.AddQueue(N("q"), o => o.Durable = true), o => o.RecoveryTimeout = TimeSpan.FromSeconds(60));
        var handled = new ConcurrentDictionary<int, int>();
        HashSet<int>? expected = null;
        var allHandled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check()
        {
            if (Volatile.Read(ref expected) is { } ids && ids.All(handled.ContainsKey))
            {
                allHandled.TrySetResult();
            }
        }

        await using var subscription = broker.Subscribe<Order>(N("q"), (d, _) =>
        {
            handled.AddOrUpdate(d.Message.Id, 1, (_, n) => n + 1);
            Check();
            return ValueTask.CompletedTask;
        }, o => o.Concurrency = 4);

        var confirmed = new ConcurrentBag<int>();
        var failed = new ConcurrentBag<(int Id, Exception Error)>();
        var restarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aHundred = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var publishing = Task.Run(async () =>
        {
            var last = int.MaxValue;
            for (var id = 1; id <= last; id++)
            {
                if (restarted.Task.IsCompleted && last == int.MaxValue)
                {
                    last = id + 100; // a hundred more after the restart
                }

                try
                {
                    await broker.SendAsync(N("q"), new Order(id));
                    confirmed.Add(id);
                    if (confirmed.Count >= 100)
                    {
                        aHundred.TrySetResult();
                    }
                }
                catch (MessageQueueException ex)
                {
                    failed.Add((id, ex));
                }
            }
        });

        await aHundred.Task.WaitAsync(TestContext.CurrentContext.CancellationToken);

        await CtlAsync(dir, "stop_app");
        await CtlAsync(dir, "start_app");
        restarted.SetResult();
        await publishing.WaitAsync(TestContext.CurrentContext.CancellationToken);

        var ids = confirmed.ToHashSet();
        Volatile.Write(ref expected, ids);
        Check();
        await allHandled.Task.WaitAsync(TimeSpan.FromSeconds(60)).ContinueWith(_ => { }, TaskScheduler.Default); // the subscription catches up (asserted below)

        var missing = ids.Where(id => !handled.ContainsKey(id)).Order().ToList();
        var duplicates = handled.Count(h => h.Value > 1);
        TestContext.Out.WriteLine($"{ids.Count} confirmed, {failed.Count} failed, {handled.Count} handled, {duplicates} handled more than once");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(missing, Is.Empty, "every confirmed message is handled");
            Assert.That(failed.Select(f => f.Error.Message), Is.Empty, "publishes during the outage waited for the connection (RecoveryTimeout 60 s)");
            Assert.That(ids, Has.Count.GreaterThan(200));
        }
    }

    [Test]
    public async Task APublishDuringAnOutage_LongerThanItsRecoveryTimeout_FailsSayingSo_ThenTheNextOneGoesThrough()
    {
        var dir = RequireNode();
        var broker = Build(b => b.AddQueue(N("q"), o => o.Durable = true), o => o.RecoveryTimeout = TimeSpan.FromMilliseconds(500));
        await CtlAsync(dir, "stop_app");
        try
        {
            var ex = await Assert.ThrowsAsync<MessageQueueException>(async () => await broker.SendAsync(N("q"), new Order(1)));
            Assert.That(ex!.Message, Does.Contain("RecoveryTimeout").And.Contain("down"));
        }
        finally
        {
            await CtlAsync(dir, "start_app");
        }

        var recovery = ((RabbitMq.RabbitMqBroker)broker).Recovery;
        var recovered = Build(b => b.AddQueue(N("q"), o => o.Durable = true), o => o.RecoveryTimeout = TimeSpan.FromSeconds(60));
        await recovered.SendAsync(N("q"), new Order(2));
        while (!recovery.IsUp)
        {
            await Task.Yield(); // the first broker's client reconnects by itself (every second); the test's deadline bounds this
        }

        await broker.SendAsync(N("q"), new Order(3));
        await using var consumer = recovered.Consume<Order>(N("q"));
        var got = new[] { await ReceiveAsync(consumer), await ReceiveAsync(consumer) };
        Assert.That(got.Select(d => d.Message.Id), Is.EqualTo(new[] { 2, 3 }), "order 1 failed, so it was never sent");
    }

    [Test]
    public async Task TheHealthCheck_IsUnhealthyWhileTheConnectionIsDown_AndHealthyWhenItIsBack()
    {
        var dir = RequireNode();
        var health = (MessageQueue.Health.ITransportHealth)Build(b => b.AddQueue(N("q")));
        Assert.That(health.Problem, Is.Null);
        await CtlAsync(dir, "stop_app");
        string? down;
        try
        {
            while ((down = health.Problem) is null)
            {
                await Task.Yield(); // until the client sees the connection close; the test's deadline bounds this
            }
        }
        finally
        {
            await CtlAsync(dir, "start_app");
        }

        Assert.That(down, Does.Contain("is down").And.Contain($"127.0.0.1:{NodeUrl.Port}"));
        while (health.Problem is not null)
        {
            await Task.Yield(); // the client reconnects by itself (every second)
        }
    }

    [Test]
    [CancelAfter(90_000)]
    public async Task ADelayedMessage_SurvivesARestartOfTheServer()
    {
        var dir = RequireNode();
        var broker = Build(b => b.AddQueue(N("q"), o => o.Durable = true), o => o.RecoveryTimeout = TimeSpan.FromSeconds(60));
        await broker.SendAsync(N("q"), new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(3) });
        await CtlAsync(dir, "stop_app"); // the message waits in a delay level meanwhile
        await CtlAsync(dir, "start_app");

        await using var consumer = broker.Consume<Order>(N("q")); // waits for the connection to come back
        var d = await ReceiveAsync(consumer);
        Assert.That((d.Message, d.Properties.Deaths.Count, d.RoutingKey), Is.EqualTo((new Order(1), 0, N("q"))));
        await d.AckAsync();
    }
}
