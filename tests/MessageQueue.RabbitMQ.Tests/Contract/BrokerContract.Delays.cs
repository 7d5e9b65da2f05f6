using System.Diagnostics;

namespace MessageQueue.RabbitMQ.Tests.Contract;

/// <summary>The contract's delays (issue 19, point 1): delayed publishes and sends, delayed nacks, a queue's
/// redelivery policy and a subscription's retry intervals behave the same on both backends (on RabbitMQ through the
/// transport's delay cascade, in whole seconds). Each waits a second or two of real time: the server's clock runs.</summary>
public abstract partial class BrokerContract
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Test]
    public async Task Publish_WithADelay_ArrivesAfterIt_AsIfPublishedThen()
    {
        var broker = Build(b => Queue(b.AddExchange(N("x"), ExchangeType.Direct), "q").Bind(N("x"), N("q"), "k"));
        await using var consumer = broker.Consume<Order>(N("q"));
        var clock = Stopwatch.StartNew();
        var sent = await broker.SendAsync(N("q"), new Order(1), new PublishOptions { Delay = Second, Headers = new Dictionary<string, object?> { ["tenant"] = "a" } });
        await broker.PublishAsync(N("x"), "k", new Order(2), new PublishOptions { DeliverAt = DateTimeOffset.UtcNow + Second });
        Assert.That(consumer.TryReceive(out _), Is.False, "nothing is ready before its time");

        var first = await ReceiveAsync(consumer);
        var second = await ReceiveAsync(consumer);
        var waited = clock.Elapsed;
        var byId = new[] { first, second }.OrderBy(d => d.Message.Id).ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(waited, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(950)));
            Assert.That(byId.Select(d => (d.Exchange, d.RoutingKey)), Is.EqualTo(new[] { ("", N("q")), (N("x"), "k") }), "the exchange and routing key it was published with");
            Assert.That(byId.Select(d => (d.DeliveryCount, d.Redelivered)), Is.All.EqualTo((1, false)));
            Assert.That(byId.SelectMany(d => d.Properties.Deaths), Is.Empty, "the delay leaves no death");
            Assert.That(byId[0].Properties.MessageId, Is.EqualTo(sent.MessageId));
            Assert.That(byId[0].Properties.Headers, Is.EqualTo(new Dictionary<string, object?> { ["tenant"] = "a" }), $"nothing of the delay's own in the headers: {string.Join(", ", byId[0].Properties.Headers.Keys)}");
        }

        await first.AckAsync();
        await second.AckAsync();
    }

    [Test]
    public async Task Nack_WithADelay_ComesBackAfterIt_CountingTheDelivery()
    {
        var broker = Build(b => Queue(b, "q"));
        await SendAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>(N("q"));
        var d = await ReceiveAsync(consumer);
        var clock = Stopwatch.StartNew();
        await d.NackAsync(requeue: true, delay: Second);
        Assert.That(consumer.TryReceive(out _), Is.False);

        var again = await ReceiveAsync(consumer);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(950)));
            Assert.That((again.Message.Id, again.DeliveryCount, again.Redelivered), Is.EqualTo((1, 2, true)));
            Assert.That(again.Properties.MessageId, Is.EqualTo(d.Properties.MessageId));
            Assert.That((again.Exchange, again.RoutingKey), Is.EqualTo(("", N("q"))));
            Assert.That(again.Properties.Deaths, Is.Empty);
        }

        await again.AckAsync();
    }

    [Test]
    public async Task RedeliveryPolicy_DelaysANack_ThenTheDeadLetterHasOnlyItsOwnDeath()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o =>
        {
            o.Redelivery = RetryPolicy.Intervals(Second);
            o.DeadLetterQueue = N("dead");
        }));
        await SendAsync(broker, "q", 1, 1);
        await using var consumer = broker.Consume<Order>(N("q"));
        var clock = Stopwatch.StartNew();
        await (await ReceiveAsync(consumer)).NackAsync(); // requeue, after the policy's second
        var again = await ReceiveAsync(consumer);
        Assert.That((clock.Elapsed >= TimeSpan.FromMilliseconds(950), again.DeliveryCount), Is.EqualTo((true, 2)));
        await again.RejectAsync("still wrong");

        await using var dead = broker.Consume<Order>(N("dead"));
        var letter = await ReceiveAsync(dead);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(letter.Properties.Deaths.Select(x => (x.Queue, x.Reason, x.Count)), Is.EqualTo(new[] { (N("q"), DeathRecord.Rejected, 1L) }));
            Assert.That(letter.Properties.Headers["x-first-death-queue"], Is.EqualTo(N("q")));
            Assert.That(letter.Properties.Headers["x-rejection-reason"], Is.EqualTo("still wrong"));
        }
    }

    [Test]
    public async Task Subscription_RetryIntervals_FreeTheWorker_ThenDeadLetter()
    {
        var broker = Build(b => Queue(Queue(b, "dead"), "q", o => o.DeadLetterQueue = N("dead")));
        var attempts = new List<(int Id, int DeliveryCount)>();
        var secondMessage = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var subscription = broker.Subscribe<Order>(N("q"), (d, ct) =>
        {
            lock (attempts)
            {
                attempts.Add((d.Message.Id, d.DeliveryCount));
            }

            if (d.Message.Id == 2)
            {
                secondMessage.TrySetResult();
                return ValueTask.CompletedTask;
            }

            throw new InvalidOperationException($"cannot handle {d.Message.Id}");
        }, o =>
        {
            o.Concurrency = 1;
            o.Retry = RetryPolicy.Intervals(Second, Second);
        });
        await SendAsync(broker, "q", 1, 2);
        await secondMessage.Task.WaitAsync(Patience); // handled by the one worker while the first waits its retry

        await using var dead = broker.Consume<Order>(N("dead"));
        var letter = await ReceiveAsync(dead);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(letter.Message.Id, Is.EqualTo(1));
            Assert.That(letter.Properties.Headers["x-exception-message"], Is.EqualTo("cannot handle 1"));
            Assert.That(letter.Properties.Deaths.Select(x => (x.Queue, x.Reason)), Is.EqualTo(new[] { (N("q"), DeathRecord.Rejected) }));
            lock (attempts)
            {
                Assert.That(attempts, Is.EqualTo(new[] { (1, 1), (2, 1), (1, 2), (1, 3) }));
            }
        }
    }

    [Test]
    public async Task Transaction_WithADelayedSend_CommitsItWithTheOthers()
    {
        var broker = Build(b => Queue(b, "q"));
        await using (var tx = broker.BeginTransaction())
        {
            await tx.SendAsync(N("q"), new Order(1), new PublishOptions { Delay = Second });
            await tx.SendAsync(N("q"), new Order(2));
            await tx.CommitAsync();
        }

        Assert.That(await ReceiveIdsAsync(broker, "q", 2), Is.EqualTo(new[] { 2, 1 }), "the delayed one after the other");
    }

    [Test]
    public async Task DelayedPublish_WithATimeToLive()
    {
        var broker = Build(b => Queue(b, "q"));
        var options = new PublishOptions { Delay = Second, TimeToLive = TimeSpan.FromMinutes(1) };
        if (OnRabbitMq)
        {
            var ex = await Assert.ThrowsAsync<NotSupportedException>(async () => await broker.SendAsync(N("q"), new Order(1), options));
            Assert.That(ex!.Message, Does.Contain("TimeToLive"));
            await broker.SendAsync(N("q"), new Order(2));
            Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 2 }), "nothing was published");
        }
        else
        {
            await broker.SendAsync(N("q"), new Order(1), options);
            Assert.That(await ReceiveIdsAsync(broker, "q", 1), Is.EqualTo(new[] { 1 }));
        }
    }
}
