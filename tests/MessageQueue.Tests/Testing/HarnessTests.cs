using System.Collections.Concurrent;
using MessageQueue.Testing;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Testing;

/// <summary>The test harness: exact idle through cascades, fake time moving retries, a timeout that names what is
/// in flight.</summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class HarnessTests
{
    [Test]
    public async Task ABrokerWithoutAHarness_IsNotObserved_EvenBesideOne_SoItsHooksAreOneNullCheck()
    {
        // The cost of the hooks with no harness is measured in benchmarks/README.md ("The test harness's hooks");
        // this shows that path is the one an application's broker takes.
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        await using var plain = new MessageBrokerBuilder().AddQueue("q").Build();
        Assert.Multiple(() =>
        {
            Assert.That(((MessageBroker)harness.Broker).IsObserved, Is.True);
            Assert.That(((MessageBroker)plain).IsObserved, Is.False);
        });
    }

    [Test]
    public async Task WaitForIdle_AfterAChainOfHandlers_SeesEveryMessageHandled_200RoundsInARow()
    {
        const int Messages = 20;
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("a").AddQueue("b").AddQueue("c"));
        var broker = harness.Broker;
        var handled = new ConcurrentBag<int>();
        await using var ab = broker.Subscribe<Order>("a", async (d, ct) => await broker.SendAsync("b", d.Message, cancellationToken: ct), o => o.Concurrency = 2);
        await using var bc = broker.Subscribe<Order>("b", async (d, ct) => await broker.SendAsync("c", d.Message, cancellationToken: ct));
        await using var c = broker.Subscribe<Order>("c", (d, _) =>
        {
            handled.Add(d.Message.Id);
            return ValueTask.CompletedTask;
        }, o => o.Concurrency = 3);

        for (var round = 0; round < 200; round++)
        {
            handled.Clear();
            for (var i = 0; i < Messages; i++)
            {
                await broker.SendAsync("a", new Order(i));
            }

            await harness.WaitForIdleAsync();

            Assert.That(handled.Order(), Is.EqualTo(Enumerable.Range(0, Messages)), $"round {round}: idle before the last level handled everything");
        }
    }

    [Test]
    public async Task ExponentialRetries_ThenDeadLetter_RunInMillisecondsOnTheFakeClock()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead"));
        var attempts = 0;
        await using var sub = harness.Broker.Subscribe<Order>("q", (_, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new TimeoutException("the payment gateway is slow");
        }, o => o.Retry = RetryPolicy.Exponential(3, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1)));

        await harness.Broker.SendAsync("q", new Order(1));
        await harness.WaitForIdleAsync();
        Assert.That(attempts, Is.EqualTo(1), "the first retry waits 1 s on the fake clock");

        foreach (var wait in new[] { 1, 2, 4 })
        {
            harness.Time.Advance(TimeSpan.FromSeconds(wait));
            await harness.WaitForIdleAsync();
        }

        var dead = (await harness.Broker.Management.PeekAsync("dead")).Single();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(attempts, Is.EqualTo(4), "the first try and 3 retries after 1, 2 and 4 s");
            Assert.That(dead.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(TimeoutException).FullName));
        }
    }

    [Test]
    public async Task WaitForIdle_TimesOut_NamingWhatIsStillInFlight()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("q"));
        await using var consumer = harness.Broker.Consume<Order>("q");
        await harness.Broker.SendAsync("q", new Order(1));
        _ = await consumer.ReceiveAsync(); // taken, never settled

        var ex = await Assert.ThrowsAsync<TimeoutException>(() => harness.WaitForIdleAsync(TimeSpan.FromMilliseconds(50)));

        Assert.That(ex!.Message, Does.StartWith("The broker was not idle within 00:00:00.0500000: ").And.Contains("'q'").And.Contains("1 unacked"));
    }

    [Test]
    public async Task WaitForIdle_IgnoresMessagesNobodyConsumes_ButNotThoseAConsumerHolds()
    {
        await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("dead"));
        await harness.Broker.SendAsync("dead", new Order(1));
        await harness.WaitForIdleAsync(); // a dead letter waiting for a person is not work in flight

        await using var consumer = harness.Broker.Consume<Order>("dead");
        Assert.That(consumer.TryReceive(out _), Is.True);
        var ex = await Assert.ThrowsAsync<TimeoutException>(() => harness.WaitForIdleAsync(TimeSpan.FromMilliseconds(50)));
        Assert.That(ex!.Message, Does.Contain("1 unacked"));
    }

    [Test]
    public void TheHarnessClock_IsTheBrokersClock_WhateverTheConfigurationSaid()
    {
        using var harness = new MessageQueueTestHarness(mq => mq.UseTimeProvider(TimeProvider.System).AddQueue("q"));
        Assert.That(((MessageBroker)harness.Broker).Time, Is.SameAs(harness.Time));
    }
}
