using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// Retry policies that know permanent errors: <c>DeadLetterOn</c> never retries, <c>Handle</c> retries only what it
/// names; the dead letter carries the exception either way; filtered policies are values.
/// </summary>
[TestFixture]
public sealed class RetryFilterTests
{
    private sealed class CardDeclinedException(string message) : InvalidOperationException(message);

    private sealed class GatewayTimeoutException(string message) : TimeoutException(message);

    [Test]
    public void ShouldRetry_DeadLetterOnWins_HandleRetriesOnlyWhatItNames_DerivedTypesMatch()
    {
        var policy = RetryPolicy.Immediate(5).Handle<TimeoutException>().DeadLetterOn<GatewayTimeoutException>();
        var handleOnly = RetryPolicy.Immediate(5).Handle<TimeoutException>();
        var deadLetterOnly = RetryPolicy.Immediate(5).DeadLetterOn<InvalidOperationException>();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(handleOnly.ShouldRetry(new TimeoutException()), Is.True);
            Assert.That(handleOnly.ShouldRetry(new GatewayTimeoutException("derived")), Is.True);
            Assert.That(handleOnly.ShouldRetry(new ArgumentException()), Is.False, "not handled: dead-lettered at once");
            Assert.That(policy.ShouldRetry(new GatewayTimeoutException("named by DeadLetterOn")), Is.False);
            Assert.That(deadLetterOnly.ShouldRetry(new CardDeclinedException("derived")), Is.False);
            Assert.That(deadLetterOnly.ShouldRetry(new TimeoutException()), Is.True, "everything else retries");
            Assert.That(RetryPolicy.None.ShouldRetry(new InvalidOperationException()), Is.True, "no filters: retries left decide");
        }
    }

    [Test]
    public void FilteredPolicies_AreValues_WhateverTheOrderOfTheCalls_AndTheBaseIsUnchanged()
    {
        var a = RetryPolicy.Immediate(3).Handle<TimeoutException>().Handle<IOException>().DeadLetterOn<ArgumentException>();
        var b = RetryPolicy.Immediate(3).DeadLetterOn<ArgumentException>().Handle<IOException>().Handle<TimeoutException>().Handle<IOException>();
        var plain = RetryPolicy.Immediate(3);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(a, Is.EqualTo(b));
            Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()));
            Assert.That(a, Is.Not.EqualTo(plain));
            Assert.That(plain.HandledExceptions, Is.Empty, "Handle returns a new policy");
            Assert.That(a.HandledExceptions, Is.EqualTo(new[] { typeof(IOException), typeof(TimeoutException) }));
            Assert.That(a.ToString(), Is.EqualTo("Immediate(3).Handle<IOException>().Handle<TimeoutException>().DeadLetterOn<ArgumentException>()"));
            Assert.That(() => plain.Handle(typeof(string)), Throws.ArgumentException.With.Message.Contains("'System.String' is not an exception type"));
            Assert.That(() => plain.DeadLetterOn(null!), Throws.ArgumentNullException);
        }
    }

    [Test]
    public async Task Subscribe_DeadLetterOn_DeadLettersAPermanentErrorAtItsFirstFailure_WithTheException()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var attempts = 0;
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new CardDeclinedException($"declined {d.Message.Id}");
        }, o => o.Retry = RetryPolicy.Immediate(5).DeadLetterOn<CardDeclinedException>());

        await broker.SendAsync("q", new Order(7));
        await broker.WaitForQueueAsync("dead", i => i.Ready == 1);

        var dead = (await broker.Management.PeekAsync("dead")).Single();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(attempts, Is.EqualTo(1), "never retried");
            Assert.That(dead.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(CardDeclinedException).FullName));
            Assert.That(dead.Properties.Headers["x-exception-message"], Is.EqualTo("declined 7"));
            Assert.That(dead.Properties.Deaths.Single().Reason, Is.EqualTo(DeathRecord.Rejected));
        }
    }

    [Test]
    public async Task Subscribe_Handle_RetriesATransientError_AndDeadLettersAnyOtherAtOnce()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var attempts = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            var n = attempts.AddOrUpdate(d.Message.Id, 1, (_, v) => v + 1);
            if (d.Message.Id == 1 && n < 3)
            {
                throw new TimeoutException("transient");
            }

            return d.Message.Id == 2 ? throw new ArgumentException("invalid order") : ValueTask.CompletedTask;
        }, o => o.Retry = RetryPolicy.Immediate(5).Handle<TimeoutException>());

        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1 && i.DeadLettered == 1);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(attempts[1], Is.EqualTo(3), "retried until it succeeded");
            Assert.That(attempts[2], Is.EqualTo(1), "not a handled exception: no retry");
        }
    }

    [Test]
    public async Task OrderedSubscription_DeadLetterOn_DoesNotHoldTheKeyForRetries()
    {
        var time = new ManualTimeProvider();
        await using var broker = new MessageBrokerBuilder().UseTimeProvider(time)
            .AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        var handled = new System.Collections.Concurrent.ConcurrentQueue<int>();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
        {
            handled.Enqueue(d.Message.Id);
            return d.Message.Id == 1 ? throw new CardDeclinedException("declined") : ValueTask.CompletedTask;
        }, o =>
        {
            o.Retry = RetryPolicy.Intervals(TimeSpan.FromHours(1)).DeadLetterOn<CardDeclinedException>();
            o.OrderingKey = d => d.Message.Kind;
        });

        await broker.SendAsync("q", new Order(1));
        await broker.SendAsync("q", new Order(2));
        await broker.WaitForQueueAsync("q", i => i.Acked == 1 && i.DeadLettered == 1);

        Assert.That(handled, Is.EqualTo(new[] { 1, 2 }), "no hour-long wait in place: the second message of the key follows at once");
    }
}

/// <summary>Logs about a message name its queue, id and delivery count, with stable event ids; handling a message
/// that succeeds logs nothing at Information or above.</summary>
[TestFixture]
public sealed class MessageLogTests
{
    [Test]
    public async Task AFailingHandler_LogsQueueMessageIdAndDeliveryCount_ASucceedingOneLogsNothing()
    {
        var logs = new RecordingLoggerFactory(Microsoft.Extensions.Logging.LogLevel.Trace);
        await using var broker = new MessageBrokerBuilder().UseLoggerFactory(logs).AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        await using var sub = broker.Subscribe<Order>("q", (d, _) =>
            d.Message.Id == 13 ? throw new InvalidOperationException("unlucky") : ValueTask.CompletedTask,
            o => o.Retry = RetryPolicy.Immediate(1).DeadLetterOn<ArgumentException>());

        for (var i = 100; i < 120; i++)
        {
            await broker.SendAsync("q", new Order(i));
        }

        await broker.WaitForQueueAsync("q", i => i.Acked == 20);
        // The broker's start (event 40, lifecycle) is the only entry at Information or above.
        Assert.That(logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Information).Select(e => e.Id.Name), Is.EqualTo(new[] { "BrokerStarted" }), "no per-message log at Information");

        var id = (await broker.SendAsync("q", new Order(13), new PublishOptions { MessageId = "order-13" })).MessageId;
        await broker.WaitForQueueAsync("q", i => i.DeadLettered == 1);
        var entries = logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Information && e.Id.Id != 40).ToArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(id, Is.EqualTo("order-13"));
            Assert.That(entries.Select(e => (e.Id.Id, e.Level)), Is.EqualTo(new[] { (1, Microsoft.Extensions.Logging.LogLevel.Warning), (2, Microsoft.Extensions.Logging.LogLevel.Warning) }), "handler failures and dead letters at Warning");
            Assert.That(entries[0].Message, Is.EqualTo("Handler for queue 'q' failed on message order-13 (delivery 1); retrying in 00:00:00"));
            Assert.That(entries[1].Message, Is.EqualTo("Handler for queue 'q' failed on message order-13 (delivery 2); retries exhausted, dead-lettering"));
        }
    }

    [Test]
    public async Task AnExceptionThePolicyDoesNotRetry_IsLoggedAsSuch()
    {
        var logs = new RecordingLoggerFactory();
        await using var broker = new MessageBrokerBuilder().UseLoggerFactory(logs).AddQueue("dead").AddQueue("q", o => o.DeadLetterQueue = "dead").Build();
        await using var sub = broker.Subscribe<Order>("q", (_, _) => throw new ArgumentException("invalid"),
            o => o.Retry = RetryPolicy.Immediate(3).DeadLetterOn<ArgumentException>());

        await broker.SendAsync("q", new Order(1), new PublishOptions { MessageId = "m-1" });
        await broker.WaitForQueueAsync("q", i => i.DeadLettered == 1);

        var entry = logs.Entries.Single();
        Assert.That((entry.Id.Id, entry.Message), Is.EqualTo((6, "Handler for queue 'q' failed on message m-1 (delivery 1) with ArgumentException, which the retry policy does not retry; dead-lettering")));
    }
}
