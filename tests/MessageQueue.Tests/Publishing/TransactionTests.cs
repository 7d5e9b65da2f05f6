using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Publishing;

[TestFixture]
[CancelAfter(20_000)]
public sealed class TransactionTests
{
    private static IMessageBroker Create(Action<QueueOptions>? limited = null) => new MessageBrokerBuilder()
        .AddExchange("orders", ExchangeType.Topic)
        .AddQueue("a")
        .AddQueue("b", o => limited?.Invoke(o))
        .AddQueue("dead")
        .Bind("orders", "a", "order.#")
        .Bind("orders", "b", "order.big.#")
        .Build();

    private static async Task<List<int>> IdsAsync(IMessageBroker broker, string queue) =>
        [.. (await broker.Management.PeekAsync(queue)).Select(m => ((Order)m.Body).Id)];

    [Test]
    public async Task Staged_InvisibleUntilCommit_ThenAllInOrder()
    {
        await using var broker = Create();
        await using var consumer = broker.Consume<Order>("a", o => o.Prefetch = 1);
        var waiting = consumer.ReceiveAsync().AsTask();
        await using var tx = broker.BeginTransaction();
        await tx.PublishAsync("orders", "order.small", new Order(1));
        await tx.PublishAsync("orders", "order.big", new Order(2), new PublishOptions { MessageId = "two" });
        await tx.SendAsync("b", new Order(3));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(tx.Count, Is.EqualTo(3));
            Assert.That(broker.Management.GetQueueInfo("a").Published, Is.Zero);
            Assert.That(broker.Management.GetQueueInfo("b").Published, Is.Zero);
            Assert.That(waiting.IsCompleted, Is.False);
        }

        var results = await tx.CommitAsync();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(results.Select(r => r.RoutedQueues), Is.EqualTo(new[] { 1, 2, 1 }));
            Assert.That(results[1].MessageId, Is.EqualTo("two"));
            Assert.That((await waiting.WithSafety()).Message.Id, Is.EqualTo(1));
            Assert.That(await IdsAsync(broker, "a"), Is.EqualTo(new[] { 2 }));
            Assert.That(await IdsAsync(broker, "b"), Is.EqualTo(new[] { 2, 3 }));
        }
    }

    [Test]
    public async Task Commit_MakesEveryMessageVisibleAtOnce()
    {
        const int Count = 500;
        await using var broker = Create();
        var a = broker.Engine().Context.Topology.GetQueue("a");
        var seen = new List<int>();
        a.Changed += () =>
        {
            lock (seen)
            {
                seen.Add(a.GetInfo().Ready);
            }
        };

        await using var tx = broker.BeginTransaction();
        for (var i = 0; i < Count; i++)
        {
            await tx.PublishAsync("orders", "order.x", new Order(i));
        }

        await tx.CommitAsync();
        lock (seen)
        {
            Assert.That(seen, Is.Not.Empty.And.All.EqualTo(0).Or.EqualTo(Count));
        }
    }

    [Test]
    public async Task DisposeWithoutCommit_DiscardsEverything()
    {
        await using var broker = Create();
        await using (var tx = broker.BeginTransaction())
        {
            await tx.PublishAsync("orders", "order.big", new Order(1));
        }

        Assert.That(broker.Management.GetQueueInfo("a").Published + broker.Management.GetQueueInfo("b").Published, Is.Zero);
    }

    [Test]
    public async Task CommitRefusedByOneQueue_EnqueuesNoneAnywhere()
    {
        await using var broker = Create(o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.RejectPublishDeadLetter; o.DeadLetterQueue = "dead"; });
        await broker.SendAsync("b", new Order(0));
        await using var tx = broker.BeginTransaction();
        await tx.PublishAsync("orders", "order.small", new Order(1));
        await tx.PublishAsync("orders", "order.big", new Order(2));
        await tx.PublishAsync("orders", "order.big", new Order(3));

        var ex = await Assert.ThrowsAsync<QueueFullException>(async () => await tx.CommitAsync());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Queue, Is.EqualTo("b"));
            Assert.That(ex.Message, Does.Contain("none of its messages was enqueued"));
            Assert.That(ex.EnqueuedQueues, Is.Empty);
            Assert.That(broker.Management.GetQueueInfo("a").Published, Is.Zero);
            Assert.That(await IdsAsync(broker, "b"), Is.EqualTo(new[] { 0 }));
            Assert.That(broker.Management.GetQueueInfo("dead").Published, Is.Zero, "an all-or-nothing refusal dead-letters nothing either");
        }
    }

    [Test]
    public async Task MandatoryUnroutable_FailsTheWholeCommit()
    {
        await using var broker = Create();
        await using var tx = broker.BeginTransaction();
        await tx.PublishAsync("orders", "order.x", new Order(1));
        await tx.PublishAsync("orders", "nothing.matches", new Order(2), new PublishOptions { Mandatory = true });
        await Assert.ThrowsAsync<UnroutableMessageException>(async () => await tx.CommitAsync());
        Assert.That(broker.Management.GetQueueInfo("a").Published, Is.Zero);
    }

    [Test]
    public async Task Misuse_GetsClearExceptions()
    {
        await using var broker = Create();
        var tx = broker.BeginTransaction();
        var unknown = await Assert.ThrowsAsync<TopologyException>(async () => await tx.PublishAsync("nope", "k", new Order(1)));
        await Assert.ThrowsAsync<TopologyException>(async () => await tx.SendAsync("nope", new Order(1)));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await tx.PublishAsync<Order>("orders", "k", null!));
        await tx.SendAsync("a", new Order(1));
        await tx.CommitAsync();
        var twice = await Assert.ThrowsAsync<InvalidOperationException>(async () => await tx.CommitAsync());
        await tx.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await tx.SendAsync("a", new Order(2)));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(unknown!.Message, Does.Contain("'nope'"));
            Assert.That(twice!.Message, Does.Contain("already committed"));
            Assert.That(tx.Count, Is.Zero);
        }
    }

    [Test]
    public async Task PublishBatch_AllOrNothing()
    {
        await using var broker = Create(o => { o.MaxLength = 3; o.Overflow = OverflowPolicy.RejectPublish; });
        var results = await broker.PublishBatchAsync("orders", "order.big", new[] { new Order(1), new Order(2) }, o => new PublishOptions { MessageId = $"o-{o.Id}" });
        Assert.That(results.Select(r => r.MessageId), Is.EqualTo(new[] { "o-1", "o-2" }));

        await Assert.ThrowsAsync<QueueFullException>(async () =>
            await broker.PublishBatchAsync("orders", "order.big", new[] { new Order(3), new Order(4) }));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await IdsAsync(broker, "a"), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(await IdsAsync(broker, "b"), Is.EqualTo(new[] { 1, 2 }));
        }
    }

    [Test]
    public async Task Block_CommitWaitsUntilTheWholeShareFits_CancellationEnqueuesNothing()
    {
        await using var broker = Create(o => { o.MaxLength = 3; o.Overflow = OverflowPolicy.Block; });
        await broker.SendAsync("b", new Order(0));
        await broker.SendAsync("b", new Order(0));

        using (var cts = new CancellationTokenSource())
        {
            var cancelled = broker.PublishBatchAsync("orders", "order.big", new[] { new Order(1), new Order(2) }, cancellationToken: cts.Token).AsTask();
            Assert.That(cancelled.IsCompleted, Is.False);
            await cts.CancelAsync();
            await Assert.CatchAsync<OperationCanceledException>(async () => await cancelled.WithSafety());
            Assert.That(broker.Management.GetQueueInfo("a").Published, Is.Zero);
        }

        var commit = broker.PublishBatchAsync("orders", "order.big", new[] { new Order(1), new Order(2) }).AsTask();
        Assert.That(commit.IsCompleted, Is.False);
        await using var consumer = broker.Consume<Order>("b", o => o.Prefetch = 1);
        var first = await consumer.ReceiveAsync(); // 1 ready + 2 new = 3: fits
        await commit.WithSafety();
        Assert.That(await IdsAsync(broker, "b"), Is.EqualTo(new[] { 0, 1, 2 }));
        await first.AckAsync();

        var never = await Assert.ThrowsAsync<QueueFullException>(async () =>
            await broker.PublishBatchAsync("orders", "order.big", Enumerable.Range(10, 4).Select(i => new Order(i))));
        Assert.That(never!.Limit, Does.Contain("could never fit"));
    }

    [Test]
    public async Task DuplicatesWithinTheTransaction_AreDroppedByTheWindow()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q", o => o.DeduplicationWindow = TimeSpan.FromMinutes(1)).Build();
        await using var tx = broker.BeginTransaction();
        await tx.SendAsync("q", new Order(1), new PublishOptions { MessageId = "same" });
        await tx.SendAsync("q", new Order(2), new PublishOptions { MessageId = "same" });
        var results = await tx.CommitAsync();
        Assert.That(results.Select(r => r.IsDuplicate), Is.EqualTo(new[] { false, true }));
        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1));
    }

    [Test]
    public async Task DelayedMessageInTransaction_IsDelayedFromCommit()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time).AddQueue("q").Build();
        await using var tx = broker.BeginTransaction();
        await tx.SendAsync("q", new Order(1), new PublishOptions { Delay = TimeSpan.FromSeconds(10) });
        await tx.SendAsync("q", new Order(2));
        await tx.CommitAsync();
        Assert.That((broker.Management.GetQueueInfo("q").Ready, broker.Management.GetQueueInfo("q").Delayed), Is.EqualTo((1, 1)));
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.That(await IdsAsync(broker, "q"), Is.EqualTo(new[] { 2, 1 }));
    }
}
