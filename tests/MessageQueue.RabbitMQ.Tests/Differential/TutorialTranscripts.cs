namespace MessageQueue.RabbitMQ.Tests.Differential;

/// <summary>RabbitMQ's six tutorials, scripted once and run on both backends; the transcripts must match.</summary>
public sealed class TutorialTranscripts : DifferentialFixture
{
    public sealed record FibRequest(int N);

    public sealed record FibReply(int N, long Result);

    [Test]
    public async Task Tutorial1_HelloWorld()
    {
        var transcript = await SameOnBothAsync((b, n) => b.AddQueue(n("hello")), async s =>
        {
            var result = await s.Broker.SendAsync(s.N("hello"), "Hello World!");
            s.Log($"sent to {result.RoutedQueues} queue");
            await s.DrainAsync<string>("hello", 1);
        });
        Assert.That(transcript, Does.Contain("hello: Hello World!"));
    }

    [Test]
    public async Task Tutorial2_WorkQueues_FairDispatchWithPrefetchOne()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("task_queue"), o => o.Durable = true), async s =>
        {
            await using var worker1 = s.Broker.Consume<string>(s.N("task_queue"), o => o.Prefetch = 1);
            await using var worker2 = s.Broker.Consume<string>(s.N("task_queue"), o => o.Prefetch = 1);
            for (var i = 1; i <= 4; i++)
            {
                await s.Broker.SendAsync(s.N("task_queue"), $"task {i}", new PublishOptions { Persistent = true });
            }

            var a = await s.ReceiveAsync(worker1);
            var b = await s.ReceiveAsync(worker2);
            s.Log($"the first two tasks went one to each worker: {string.Join(", ", new[] { a.Message, b.Message }.Order(StringComparer.Ordinal))}");
            s.Log($"worker 1 gets nothing more while it holds one: {!worker1.TryReceive(out _)}");
            await a.AckAsync();
            var c = await s.ReceiveAsync(worker1);
            s.Log($"after its ack worker 1 gets the next: {c.Message}");
            await b.AckAsync();
            var d = await s.ReceiveAsync(worker2);
            s.Log($"after its ack worker 2 gets the next: {d.Message}");
            await c.AckAsync();
            await d.AckAsync();
            s.Log($"left in the queue: {s.Broker.Management.GetQueueInfo(s.N("task_queue")).Ready}");
        });
    }

    [Test]
    public async Task Tutorial3_PublishSubscribe()
    {
        await SameOnBothAsync((b, n) => b.AddExchange(n("logs"), ExchangeType.Fanout)
            .AddQueue(n("screen")).AddQueue(n("file"))
            .Bind(n("logs"), n("screen")).Bind(n("logs"), n("file")), async s =>
        {
            foreach (var line in new[] { "info: started", "warning: disk", "error: crashed" })
            {
                await s.Broker.PublishAsync(s.N("logs"), "", line);
            }

            await s.DrainAsync<string>("screen", 3);
            await s.DrainAsync<string>("file", 3);
        });
    }

    [Test]
    public async Task Tutorial4_Routing()
    {
        await SameOnBothAsync((b, n) => b.AddExchange(n("direct_logs"), ExchangeType.Direct)
            .AddQueue(n("errors")).AddQueue(n("all"))
            .Bind(n("direct_logs"), n("errors"), "error")
            .Bind(n("direct_logs"), n("all"), "info").Bind(n("direct_logs"), n("all"), "warning").Bind(n("direct_logs"), n("all"), "error"), async s =>
        {
            foreach (var severity in new[] { "info", "warning", "error", "debug" })
            {
                var result = await s.Broker.PublishAsync(s.N("direct_logs"), severity, $"a {severity} message");
                s.Log($"{severity}: routed {(result.RoutedQueues > 0 ? "somewhere" : "nowhere")}");
            }

            await s.DrainAsync<string>("errors", 1);
            await s.DrainAsync<string>("all", 3);
        });
    }

    [Test]
    public async Task Tutorial5_Topics()
    {
        await SameOnBothAsync((b, n) => b.AddExchange(n("topic_logs"), ExchangeType.Topic)
            .AddQueue(n("Q1")).AddQueue(n("Q2"))
            .Bind(n("topic_logs"), n("Q1"), "*.orange.*")
            .Bind(n("topic_logs"), n("Q2"), "*.*.rabbit").Bind(n("topic_logs"), n("Q2"), "lazy.#"), async s =>
        {
            string[] keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox", "lazy.pink.rabbit",
                "quick.brown.fox", "orange", "quick.orange.male.rabbit", "lazy.orange.male.rabbit"];
            foreach (var key in keys)
            {
                var result = await s.Broker.PublishAsync(s.N("topic_logs"), key, key);
                s.Log($"{key}: routed {(result.RoutedQueues > 0 ? "somewhere" : "nowhere")}");
            }

            await s.DrainAsync<string>("Q1", 3);
            await s.DrainAsync<string>("Q2", 5); // lazy.pink.rabbit matches both of Q2's bindings and arrives once
            s.Log($"left: Q1 {s.Broker.Management.GetQueueInfo(s.N("Q1")).Ready}, Q2 {s.Broker.Management.GetQueueInfo(s.N("Q2")).Ready}");
        });
    }

    [Test]
    public async Task Tutorial6_Rpc()
    {
        await SameOnBothAsync((b, n) => b.AddQueue(n("rpc_queue")).AddQueue(n("replies")), async s =>
        {
            await using var server = s.Broker.Subscribe<FibRequest>(s.N("rpc_queue"), async (d, ct) =>
            {
                var reply = new FibReply(d.Message.N, Fib(d.Message.N));
                await s.Broker.SendAsync(d.Properties.ReplyTo!, reply, new PublishOptions { CorrelationId = d.Properties.CorrelationId }, ct);
            });
            await using var replies = s.Broker.Consume<FibReply>(s.N("replies"));
            foreach (var (n, id) in new[] { (10, "call-1"), (30, "call-2") })
            {
                await s.Broker.SendAsync(s.N("rpc_queue"), new FibRequest(n), new PublishOptions { ReplyTo = s.N("replies"), CorrelationId = id });
                var r = await s.ReceiveAsync(replies);
                s.Log($"{r.Properties.CorrelationId}: fib({r.Message.N}) = {r.Message.Result}");
                await r.AckAsync();
            }
        });
    }

    private static long Fib(int n) => n < 2 ? n : Fib(n - 1) + Fib(n - 2);
}
