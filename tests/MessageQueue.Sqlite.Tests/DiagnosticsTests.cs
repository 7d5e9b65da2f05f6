using System.Collections.Concurrent;
using System.Diagnostics;
using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Diagnostics;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>Issue 17 on a store: a trace crosses a durable queue's restart (the context is stored with the message),
/// and the store's commits are measured.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class DiagnosticsTests : TempDatabaseFixture
{
    private IMessageBroker Build() => new MessageBrokerBuilder().UseSqlite(Database).AddQueue("q", o => o.Durable = true).Build();

    [Test]
    public async Task ATrace_CrossesARestartOfADurableQueue()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "MessageQueue",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        await using (var broker = Build())
        {
            await broker.SendAsync("q", new Order(1));
        }

        await using (var restarted = Build())
        {
            await using var consumer = restarted.Consume<Order>("q");
            var delivery = await consumer.ReceiveAsync();
            await delivery.AckAsync();
        }

        var send = stopped.Single(a => a.DisplayName == "send q");
        var receive = stopped.Single(a => a.DisplayName == "receive q");
        Assert.That((receive.TraceId, receive.ParentSpanId), Is.EqualTo((send.TraceId, send.SpanId)), "the receive after the restart is a child of the send before it");
    }

    [Test]
    public async Task StoreCommits_AreMeasured_DurationAndChanges()
    {
        await using var broker = Build();
        using var metrics = new MetricsRecorder(broker.Engine().Context.Metrics.Meter);
        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));

        var durations = metrics.Of("messagequeue.store.commit.duration");
        var changes = metrics.Of("messagequeue.store.commit.changes");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(durations, Has.Count.GreaterThanOrEqualTo(2), "one write per confirmed publish at least");
            Assert.That(durations.Select(d => d.Value), Is.All.GreaterThan(0));
            Assert.That(changes.Sum(c => c.Value), Is.GreaterThanOrEqualTo(2), "two inserted rows");
            Assert.That(durations.Select(d => d.Unit).Distinct(), Is.EqualTo(new[] { "s" }));
        }
    }
}
