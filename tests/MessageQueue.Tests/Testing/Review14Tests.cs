using MessageQueue.Testing;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Testing;

/// <summary>Review of the test harness (issue 14): faults found, each shown by a failing test.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class Review14Tests
{
    /// <summary>BrokerQueue.Settle.cs Nack: the observer is told "Requeued" before Requeue() finds the delivery limit
    /// reached and dead-letters the message instead. The harness then records a nack back to the queue (with a delay)
    /// that never happened, next to the dead letter.</summary>
    [Test]
    public async Task ARetryAtTheDeliveryLimit_IsDeadLettered_NotRecordedAsNacked()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq
            .AddQueue("dead")
            .AddQueue("q", q => { q.DeadLetterQueue = "dead"; q.MaxDeliveryCount = 1; }));
        await using var sub = harness.Broker.Subscribe<Order>("q", (_, _) => throw new TimeoutException("slow"),
            o => o.Retry = RetryPolicy.Intervals(TimeSpan.FromSeconds(5)));

        await harness.Broker.SendAsync("q", new Order(1));
        var dead = await harness.DeadLettered.AnyAsync<Order>();
        await harness.WaitForIdleAsync();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(dead.Reason, Is.EqualTo(DeathRecord.DeliveryLimit));
            Assert.That(harness.Nacked.All, Is.Empty, "the message never went back to its queue: it was dead-lettered at its delivery limit");
        }
    }

    /// <summary>The harness's own constructor does not set KeepDurableQueuesInMemory (only AddMessageQueueTestHarness
    /// does): an application topology with a durable queue cannot be put under <c>new MessageQueueTestHarness</c>
    /// without a database, unlike the DI harness.</summary>
    [Test]
    public async Task TheHarnessConstructor_KeepsDurableQueuesInMemory_AsTheDiHarnessDoes()
    {
        MessageQueueTestHarness? harness = null;
        Assert.DoesNotThrow(() => harness = new MessageQueueTestHarness(mq => mq.AddQueue("payments", q => q.Durable = true)));
        if (harness is not null)
        {
            await harness.DisposeAsync();
        }
    }

    /// <summary>The shutdown timeout runs on the harness's FakeTimeProvider, which never moves by itself: disposing a
    /// harness while a handler waits (for its token, or for fake time) hangs forever instead of cancelling the
    /// handler after the timeout.</summary>
    [Test]
    public async Task DisposingTheHarness_WithAHandlerStillRunning_CancelsItAfterTheShutdownTimeout()
    {
        var harness = new MessageQueueTestHarness(mq => mq.WithShutdownTimeout(TimeSpan.FromMilliseconds(100)).AddQueue("q"));
        var sub = harness.Broker.Subscribe<Order>("q", async (_, ct) => await Task.Delay(Timeout.Infinite, ct));
        await harness.Broker.SendAsync("q", new Order(1));
        await harness.Delivered.AnyAsync<Order>();

        var disposing = harness.DisposeAsync().AsTask();
        try
        {
            await disposing.WaitAsync(TimeSpan.FromSeconds(10)); // completes once the 100 ms pass in real time
        }
        finally
        {
            if (!disposing.IsCompleted)
            {
                harness.Time.Advance(TimeSpan.FromSeconds(1)); // release a hang so the test run does not leak it
            }

            await sub.DisposeAsync();
        }
    }

    /// <summary>TestDelivery.Create documents "new ones (a generated id, now)", but only the id is set: Timestamp is
    /// 0001-01-01 and MessageType is null, where the broker always sets both.</summary>
    [Test]
    public void TestDelivery_DefaultProperties_AreThoseTheBrokerWouldGive()
    {
        var delivery = TestDelivery.Create(new Order(1)).Delivery;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(delivery.Properties.Timestamp, Is.Not.EqualTo(default(DateTimeOffset)), "documented as now");
            Assert.That(delivery.Properties.MessageType, Is.Not.Null, "the broker sets the type name");
        }
    }

    /// <summary>An ordered subscription retries in place (RedeliverInPlace): the harness records the redelivery but
    /// no nack, so Nacked ("handler retries included") is empty for the same handler and policy that records one
    /// nack without an OrderingKey.</summary>
    [Test]
    public async Task AnOrderedSubscriptionsRetry_IsRecordedInNacked_AsAnUnorderedOnesIs()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        var attempts = 0;
        await using var sub = harness.Broker.Subscribe<Order>("q", (_, _) =>
            Interlocked.Increment(ref attempts) == 1 ? throw new TimeoutException("slow") : ValueTask.CompletedTask,
            o => { o.Retry = RetryPolicy.Intervals(TimeSpan.FromSeconds(1)); o.OrderingKey = d => d.Message.Kind; });

        await harness.Broker.SendAsync("q", new Order(1));
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromSeconds(1));
        await harness.Acked.AnyAsync<Order>();
        await harness.WaitForIdleAsync();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(harness.Delivered.Exactly<Order>(2).Select(d => d.DeliveryCount), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(harness.Nacked.All, Has.Count.EqualTo(1), "the retry is a handler retry");
        }
    }

    /// <summary>A due delayed message waiting for room in a full Block queue that nobody consumes cannot make
    /// progress, like the ready messages there, but BusyLocked still counts it ("due message(s) joining"), so
    /// WaitForIdleAsync never completes.</summary>
    [Test]
    public async Task WaitForIdle_Completes_WhenADueMessageWaitsForRoomInAQueueNobodyConsumes()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("out", q => { q.MaxLength = 1; q.Overflow = OverflowPolicy.Block; }));
        await harness.Broker.SendAsync("out", new Order(1));
        await harness.Broker.SendAsync("out", new Order(2), new PublishOptions { Delay = TimeSpan.FromSeconds(1) });
        harness.Time.Advance(TimeSpan.FromSeconds(1));

        await Assert.DoesNotThrowAsync(() => harness.WaitForIdleAsync(TimeSpan.FromSeconds(2)));
    }

    /// <summary>AddMessageQueueTestHarness only ever wraps the unnamed broker: with an application that registers a
    /// keyed broker (AddMessageQueue(name, ...)) it silently creates a second, empty unnamed broker and records
    /// nothing of the application's.</summary>
    [Test]
    public async Task TheDiHarness_RecordsAKeyedBroker()
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddMessageQueue("billing", mq => mq.AddQueue("invoices"));
        builder.Services.AddMessageQueueTestHarness();
        using var host = builder.Build();
        await host.StartAsync().WithSafety();
        var harness = host.Services.GetRequiredService<MessageQueueTestHarness>();

        await host.Services.GetRequiredKeyedService<IProducer>("billing").SendAsync("invoices", new Order(1));

        using (Assert.EnterMultipleScope())
        {
            Assert.That(harness.Broker, Is.SameAs(host.Services.GetRequiredKeyedService<IMessageBroker>("billing")));
            Assert.That(harness.Published.All, Has.Count.EqualTo(1));
        }

        await host.StopAsync().WithSafety();
    }
}
