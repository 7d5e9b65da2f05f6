using MessageQueue.Testing;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Testing;

/// <summary>The harness's recorded lists: what was published, delivered, acked, nacked and dead-lettered, filterable,
/// awaitable without polling, with exact assertions that show the list when they fail.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class RecordingTests
{
    [Test]
    public async Task ARetryThenDeadLetter_IsRecordedStepByStep()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq
            .AddExchange("orders", ExchangeType.Direct)
            .AddQueue("dead").AddQueue("billing", q => q.DeadLetterQueue = "dead")
            .Bind("orders", "billing", "created"));
        await using var sub = harness.Broker.Subscribe<Order>("billing", (d, _) =>
            d.Message.Id == 2 ? throw new InvalidOperationException("card declined") : ValueTask.CompletedTask,
            o => o.Retry = RetryPolicy.Intervals(TimeSpan.FromSeconds(30)));

        await harness.Broker.PublishAsync("orders", "created", new Order(1));
        await harness.Broker.PublishAsync("orders", "created", new Order(2), new PublishOptions { MessageId = "order-2" });
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromSeconds(30));
        var dead = await harness.DeadLettered.AnyAsync<Order>(o => o.Id == 2);
        await harness.WaitForIdleAsync();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(harness.Published.Only<Order>(2).Select(p => (p.Exchange, p.RoutingKey, p.RoutedQueues)), Has.All.EqualTo(("orders", "created", 1)));
            Assert.That(harness.Delivered.Exactly<Order>(2, o => o.Id == 2).Select(d => d.DeliveryCount), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(harness.Acked.Only<Order>(1).Single().Message, Is.EqualTo(new Order(1)));
            Assert.That(harness.Nacked.Only<Order>(1).Single().Delay, Is.EqualTo(TimeSpan.FromSeconds(30)));
            Assert.That((dead.Queue, dead.MessageId, dead.Reason, dead.Exception?.Message), Is.EqualTo(("billing", "order-2", DeathRecord.Rejected, "card declined")));
        }
    }

    [Test]
    public async Task Exactly_AndOnly_FailWithTheListTheyFound()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        await harness.Broker.SendAsync("q", new Order(1));
        await harness.Broker.SendAsync("q", new Invoice(7));

        var exactly = Assert.Throws<MessageQueueAssertionException>(() => harness.Published.Exactly<Order>(2));
        var only = Assert.Throws<MessageQueueAssertionException>(() => harness.Published.Only<Order>(1));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(exactly!.Message, Does.StartWith("Expected exactly 2 Order published, but 1 were. 2 published:").And.Contains("Invoice { Number = 7 }"));
            Assert.That(only!.Message, Does.StartWith("Expected exactly 1 Order published and nothing else. 2 published:"));
            Assert.That(harness.Published.Exactly<Invoice>(1).Single().RoutingKey, Is.EqualTo("q"));
        }
    }

    [Test]
    public async Task AnyAsync_WaitsForARecordAndTimesOutListingWhatCameInstead()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        var waiting = harness.Published.AnyAsync<Order>(o => o.Id == 5);
        Assert.That(waiting.IsCompleted, Is.False);
        await harness.Broker.SendAsync("q", new Order(4));
        await harness.Broker.SendAsync("q", new Order(5));
        Assert.That((await waiting.WithSafety()).Message, Is.EqualTo(new Order(5)));

        var ex = await Assert.ThrowsAsync<TimeoutException>(() => harness.Published.AnyAsync<Order>(o => o.Id == 9, TimeSpan.FromMilliseconds(50)));
        Assert.That(ex!.Message, Does.StartWith("No Order matching the condition was published within 00:00:00.0500000. 2 published:").And.Contains("Order { Id = 5"));
    }

    [Test]
    public async Task ATransactionsMessages_AreRecordedWhenCommitted_NotBefore()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        await using (var tx = harness.Broker.BeginTransaction())
        {
            await tx.SendAsync("q", new Order(1));
            Assert.That(harness.Published.All, Is.Empty);
            await tx.CommitAsync();
        }

        Assert.That(harness.Published.Only<Order>(1).Single().RoutingKey, Is.EqualTo("q"));
    }
}
