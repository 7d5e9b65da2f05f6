using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 4: a three-node cluster on loopback (<c>scripts/rabbitmq-cluster.sh</c>; <c>.ci/run</c>
/// starts one and sets <c>MQ_RABBITMQ_CLUSTER_URLS</c> and <c>MQ_RABBITMQ_CLUSTER_DIR</c>). A quorum queue, a publisher
/// with confirms and a subscription; the node holding the queue's leader (the node the broker is connected to) is
/// killed with SIGKILL mid-run; the client fails over to another node of its list, a new leader is elected, and every
/// confirmed message is consumed, more than once only when redelivered.</summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class ClusterTests
{
    public sealed record Order(int Id);

    private static (string[] Urls, string Dir) RequireCluster()
    {
        var urls = Environment.GetEnvironmentVariable("MQ_RABBITMQ_CLUSTER_URLS");
        var dir = Environment.GetEnvironmentVariable("MQ_RABBITMQ_CLUSTER_DIR");
        if (string.IsNullOrWhiteSpace(urls) || string.IsNullOrWhiteSpace(dir))
        {
            Assert.Ignore("No RabbitMQ cluster: MQ_RABBITMQ_CLUSTER_URLS and MQ_RABBITMQ_CLUSTER_DIR are not set. Start one with 'scripts/rabbitmq-cluster.sh start /tmp/mq-cluster' and set them to the URLs it prints and that folder (.ci/run does both).");
        }

        return (urls!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), dir!);
    }

    private static Task<string> ClusterAsync(string dir, params string[] args) => NodeScripts.RunAsync("rabbitmq-cluster.sh", [args[0], dir, .. args[1..]]);

    /// <summary>The number (1-3) of the node holding <paramref name="queue"/>'s leader, asked of a living node.</summary>
    private static async Task<int> LeaderAsync(string dir, string queue, int askNode = 1)
    {
        using var json = JsonDocument.Parse(await ClusterAsync(dir, "ctl", askNode.ToString(System.Globalization.CultureInfo.InvariantCulture), "list_queues", "name", "leader", "--formatter", "json"));
        var leader = json.RootElement.EnumerateArray().Single(q => q.GetProperty("name").GetString() == queue).GetProperty("leader").GetString()!;
        return leader[3] - '0'; // mqcN@localhost
    }

    [Test]
    public async Task KillingTheLeadersNode_WhilePublishingWithConfirms_LosesNoConfirmedMessage()
    {
        var (urls, dir) = RequireCluster();
        var queue = $"cluster-{Guid.NewGuid():N}"[..20];
        var builder = new MessageBrokerBuilder()
            .AddQueue(queue, q => q.Durable = true)
            .UseRabbitMq(urls[0], o =>
            {
                o.DefaultQueueType = RabbitMqQueueType.Quorum;
                o.RecoveryTimeout = TimeSpan.FromSeconds(60);
                foreach (var other in urls.Skip(1).Select(u => new Uri(u)))
                {
                    o.ClusterNodes.Add($"{other.Host}:{other.Port}");
                }
            });
        var broker = builder.Build();
        var killed = 0;
        try
        {
            var leader = await LeaderAsync(dir, queue);
            var connectedTo = ((RabbitMq.RabbitMqBroker)broker).Connection.Endpoint.Port - 5690; // the client picks a node of its list
            Assert.That(leader, Is.EqualTo(connectedTo), "the leader is on the node the broker declared it through, so killing it also fails the connection over");
            var handled = new ConcurrentDictionary<int, (int Count, bool Redelivered)>();
            await using var subscription = broker.Subscribe<Order>(queue, (d, _) =>
            {
                handled.AddOrUpdate(d.Message.Id, (1, d.Redelivered), (_, h) => (h.Count + 1, h.Redelivered || d.Redelivered));
                return ValueTask.CompletedTask;
            }, o => o.Concurrency = 4);

            var confirmed = new ConcurrentBag<int>();
            var failed = new ConcurrentBag<Exception>();
            var aHundred = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var afterKill = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var publishing = Task.Run(async () =>
            {
                var last = int.MaxValue;
                for (var id = 1; id <= last; id++)
                {
                    if (afterKill.Task.IsCompleted && last == int.MaxValue)
                    {
                        last = id + 200;
                    }

                    try
                    {
                        await broker.SendAsync(queue, new Order(id));
                        confirmed.Add(id);
                        if (confirmed.Count >= 100)
                        {
                            aHundred.TrySetResult();
                        }
                    }
                    catch (MessageQueueException ex)
                    {
                        failed.Add(ex);
                    }
                }
            });

            await aHundred.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await ClusterAsync(dir, "kill", leader.ToString(System.Globalization.CultureInfo.InvariantCulture));
            killed = leader;
            afterKill.SetResult();
            await publishing.WaitAsync(TimeSpan.FromSeconds(120));

            var ids = confirmed.ToHashSet();
            var deadline = Stopwatch.StartNew();
            while (!ids.All(handled.ContainsKey) && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Yield(); // the subscription catches up after the failover (asserted below)
            }

            var living = new[] { 1, 2, 3 }.First(n => n != killed);
            var newLeader = await LeaderAsync(dir, queue, living);
            var twice = handled.Where(h => h.Value.Count > 1).ToList();
            TestContext.Out.WriteLine($"leader mqc{leader} killed, new leader mqc{newLeader}; {ids.Count} confirmed, {failed.Count} failed, {handled.Count} handled, {twice.Count} more than once");
            using (Assert.EnterMultipleScope())
            {
                Assert.That(ids.Where(id => !handled.ContainsKey(id)), Is.Empty, "every confirmed message is consumed");
                Assert.That(twice.Where(h => !h.Value.Redelivered).Select(h => h.Key), Is.Empty, "a message consumed twice was redelivered");
                Assert.That(newLeader, Is.Not.EqualTo(leader));
                Assert.That(ids, Has.Count.GreaterThan(300));
            }
        }
        finally
        {
            await broker.DisposeAsync();
            if (killed != 0)
            {
                await ClusterAsync(dir, "revive", killed.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }
}
