namespace MessageQueue.RabbitMQ.Tests.Differential;

/// <summary>Dead-lettering, priorities, TTL and length limits, scripted once and run on both backends.</summary>
public sealed class SemanticsTranscripts : DifferentialFixture
{
    [Test]
    public async Task DeadLettering_ThroughAnExchange_WithReasonsAndHistory()
    {
        await SameOnBothAsync((b, n) => b.AddExchange(n("dlx"), ExchangeType.Direct)
            .AddQueue(n("dead")).Bind(n("dlx"), n("dead"), "failed")
            .AddQueue(n("work"), o => { o.DeadLetterExchange = n("dlx"); o.DeadLetterRoutingKey = "failed"; }), async s =>
        {
            await using (var consumer = s.Broker.Consume<string>(s.N("work"), o => o.Prefetch = 1))
            {
                foreach (var body in new[] { "nacked", "rejected with a reason", "requeued then nacked" })
                {
                    await s.Broker.SendAsync(s.N("work"), body);
                }

                await (await s.ReceiveAsync(consumer)).NackAsync(requeue: false);
                var second = await s.ReceiveAsync(consumer);
                await second.RejectAsync("the total is negative");
                var third = await s.ReceiveAsync(consumer);
                await third.NackAsync(requeue: true);
                var again = await s.ReceiveAsync(consumer);
                s.Log($"{again.Message}: redelivered {again.Redelivered}");
                await again.NackAsync(requeue: false);
            }

            await using var dead = s.Broker.Consume<string>(s.N("dead"));
            var letters = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                var d = await s.ReceiveAsync(dead);
                letters.Add($"{d.Message}: {s.Death(d.Properties)}");
                await d.AckAsync();
            }

            letters.Sort(StringComparer.Ordinal); // separate deaths: neither backend promises their order
            letters.ForEach(s.Log);
        });
    }

    [Test]
    public async Task DeadLettering_AHandlerThatKeepsFailing()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("dead")).AddQueue(n("work"), o => o.DeadLetterQueue = n("dead")), async s =>
        {
            var attempts = new List<int>();
            await using (s.Broker.Subscribe<string>(s.N("work"), (d, _) =>
            {
                lock (attempts)
                {
                    attempts.Add(d.DeliveryCount);
                }

                throw new InvalidOperationException($"cannot handle '{d.Message}'");
            }, o => o.Retry = RetryPolicy.Intervals(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20))))
            {
                await s.Broker.SendAsync(s.N("work"), "poison");
                await using var dead = s.Broker.Consume<string>(s.N("dead"));
                var d = await s.ReceiveAsync(dead);
                s.Log($"{d.Message}: {s.Death(d.Properties)}");
                await d.AckAsync();
            }

            s.Log($"attempts: {string.Join(", ", attempts)}");
        });
    }

    [Test]
    public async Task Priorities()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("jobs"), o => o.MaxPriority = 10), async s =>
        {
            var jobs = new (string Name, byte Priority)[] { ("backup", 1), ("page the on-call", 10), ("report", 5), ("email", 5), ("cleanup", 0), ("over the max", 200) };
            foreach (var (name, priority) in jobs)
            {
                await s.Broker.SendAsync(s.N("jobs"), name, new PublishOptions { Priority = priority });
            }

            await s.DrainAsync<string>("jobs", jobs.Length, d => $"{d.Message} ({d.Properties.Priority})");
        });
    }

    [Test]
    public async Task Ttl_PerQueueAndPerMessage()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("expired"))
            .AddQueue(n("short"), o => { o.MessageTtl = TimeSpan.FromMilliseconds(30); o.DeadLetterQueue = n("expired"); })
            .AddQueue(n("mixed"), o => o.DeadLetterQueue = n("expired")), async s =>
        {
            await s.Broker.SendAsync(s.N("short"), "queue ttl");
            await s.Broker.SendAsync(s.N("mixed"), "message ttl", new PublishOptions { TimeToLive = TimeSpan.FromMilliseconds(30) });
            await s.Broker.SendAsync(s.N("mixed"), "zero ttl, no consumer", new PublishOptions { TimeToLive = TimeSpan.Zero });
            await s.Broker.SendAsync(s.N("mixed"), "no ttl"); // last: RabbitMQ expires a message only at the head (contract: PerMessageTtl_BehindALiveMessage)
            await using var expired = s.Broker.Consume<string>(s.N("expired"));
            var letters = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                var d = await s.ReceiveAsync(expired);
                letters.Add($"{d.Message}: {s.Death(d.Properties)}, original expiration {d.Properties.Deaths[0].OriginalExpiration?.TotalMilliseconds}");
                await d.AckAsync();
            }

            letters.Sort(StringComparer.Ordinal);
            letters.ForEach(s.Log);
            await s.DrainAsync<string>("mixed", 1);
        });
    }

    [Test]
    public async Task LengthLimits_DropHead_RejectPublish_AndRejectPublishDeadLetter()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("dead"))
            .AddQueue(n("drop"), o => { o.MaxLength = 2; o.DeadLetterQueue = n("dead"); })
            .AddQueue(n("reject"), o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.RejectPublish; o.DeadLetterQueue = n("dead"); })
            .AddQueue(n("reject-dlx"), o => { o.MaxLength = 2; o.Overflow = OverflowPolicy.RejectPublishDeadLetter; o.DeadLetterQueue = n("dead"); }), async s =>
        {
            foreach (var queue in new[] { "drop", "reject", "reject-dlx" })
            {
                for (var i = 1; i <= 3; i++)
                {
                    try
                    {
                        await s.Broker.SendAsync(s.N(queue), $"{queue} {i}");
                        s.Log($"{queue} {i}: accepted");
                    }
                    catch (QueueFullException)
                    {
                        s.Log($"{queue} {i}: refused, queue full");
                    }
                }

                await s.DrainAsync<string>(queue, 2);
            }

            await using var dead = s.Broker.Consume<string>(s.N("dead"));
            var letters = new List<string>();
            for (var i = 0; i < 2; i++)
            {
                var d = await s.ReceiveAsync(dead);
                letters.Add($"{d.Message}: {s.Death(d.Properties)}");
                await d.AckAsync();
            }

            letters.Sort(StringComparer.Ordinal);
            letters.ForEach(s.Log);
        });
    }
}
