using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>Exact idle detection with durable queues: a publish, a dead letter's move and a redelivery are store
/// units between being decided and being in their queue; the broker is not idle while one is on its way.</summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class DurableIdleTests : TempDatabaseFixture
{
    [Test]
    public async Task DurableCascade_IsIdleOnlyOnceTheLastLevelHandledEverything_200Rounds()
    {
        const int Levels = 5;
        var builder = new MessageBrokerBuilder().UseSqlite(Database).AddQueue("dead1", o => o.Durable = true);
        for (var i = 0; i < Levels; i++)
        {
            var level = i;
            builder.AddQueue($"level{i}", o => { o.Durable = true; o.DeadLetterQueue = level == 1 ? "dead1" : null; });
        }

        await using var broker = builder.Build();
        var done = 0;
        var subscriptions = new List<ISubscription>
        {
            broker.Subscribe<Order>("dead1", async (d, ct) => await broker.SendAsync("level2", d.Message, cancellationToken: ct)),
        };
        for (var i = 0; i < Levels; i++)
        {
            var level = i;
            subscriptions.Add(broker.Subscribe<Order>($"level{i}", async (d, ct) =>
            {
                if (level == Levels - 1)
                {
                    Interlocked.Increment(ref done);
                }
                else if (level == 1)
                {
                    await d.RejectAsync("to the durable dead-letter queue", ct); // a store unit moves it to dead1
                }
                else
                {
                    await broker.SendAsync($"level{level + 1}", d.Message, cancellationToken: ct);
                }
            }));
        }

        try
        {
            for (var round = 1; round <= 200; round++)
            {
                await broker.SendAsync("level0", new Order(round));
                try
                {
                    await broker.Engine().WhenIdleAsync().WaitAsync(TimeSpan.FromSeconds(20));
                }
                catch (TimeoutException)
                {
                    Assert.Fail($"round {round}: never idle; busy: {broker.Engine().Context.InFlight.Busy()}");
                }

                Assert.That(Volatile.Read(ref done), Is.EqualTo(round), $"round {round}: idle before the cascade ended");
            }
        }
        finally
        {
            foreach (var s in subscriptions)
            {
                await s.DisposeAsync();
            }
        }
    }
}
