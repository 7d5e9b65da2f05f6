using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Routing;

[TestFixture]
public sealed class RoutingTests
{
    /// <summary>Publishes once and returns the queues that received the message.</summary>
    private static async Task<string[]> RouteAsync(IMessageBroker broker, string exchange, string key, IReadOnlyDictionary<string, object?>? headers = null)
    {
        var before = broker.Management.GetQueueNames().ToDictionary(n => n, n => broker.Management.GetQueueInfo(n).Published);
        var result = await broker.PublishAsync(exchange, key, new Order(1), headers is null ? null : new PublishOptions { Headers = headers });
        var hit = before.Where(kv => broker.Management.GetQueueInfo(kv.Key).Published > kv.Value).Select(kv => kv.Key).Order().ToArray();
        Assert.That(result.RoutedQueues, Is.EqualTo(hit.Length), "PublishResult.RoutedQueues counts the queues reached");
        Assert.That(hit.Sum(n => broker.Management.GetQueueInfo(n).Published - before[n]), Is.EqualTo(hit.Length), "one copy per queue");
        return hit;
    }

    [Test]
    public async Task Direct_RoutesOnKeyEquality()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("d", ExchangeType.Direct)
            .AddQueue("a").AddQueue("b")
            .Bind("d", "a", "red").Bind("d", "b", "red").Bind("d", "b", "blue")
            .Build();
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "d", "red"), Is.EqualTo(new[] { "a", "b" }));
            Assert.That(await RouteAsync(broker, "d", "blue"), Is.EqualTo(new[] { "b" }));
            Assert.That(await RouteAsync(broker, "d", "Red"), Is.Empty);
        });
    }

    [Test]
    public async Task Fanout_RoutesToAllIgnoringKey()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("f", ExchangeType.Fanout)
            .AddQueue("a").AddQueue("b").AddQueue("c")
            .Bind("f", "a").Bind("f", "b", "whatever").Bind("f", "b", "again")
            .Build();
        Assert.That(await RouteAsync(broker, "f", "anything"), Is.EqualTo(new[] { "a", "b" }));
    }

    [TestCase("a.b.c", "a.b.c", true)]
    [TestCase("a.*.c", "a.b.c", true)]
    [TestCase("a.*.c", "a.c", false)]
    [TestCase("a.#", "a", true)]
    [TestCase("a.#", "a.b.c", true)]
    [TestCase("#.c", "c", true)]
    [TestCase("#.c", "a.b.c", true)]
    [TestCase("a.#.c", "a.c", true)]
    [TestCase("a.#.c", "a.x.y.c", true)]
    [TestCase("a.#.c", "a.x.y.d", false)]
    [TestCase("#", "", true)]
    [TestCase("#", "a.b", true)]
    [TestCase("*", "", false)]
    [TestCase("*", "a", true)]
    [TestCase("*", "a.b", false)]
    [TestCase("", "", true)]
    [TestCase("", "a", false)]
    [TestCase("a..b", "a..b", true)]
    [TestCase("a.*.b", "a..b", true)]
    [TestCase("a.", "a.", true)]
    [TestCase("a.*", "a.", true)]
    [TestCase("a.*", "a", false)]
    [TestCase("#.#", "a", true)]
    [TestCase("*.#.*", "a", false)]
    [TestCase("*.#.*", "a.b", true)]
    public async Task Topic_MatchesAsRabbitMq(string pattern, string key, bool matches)
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("t", ExchangeType.Topic)
            .AddQueue("q")
            .Bind("t", "q", pattern)
            .Build();
        Assert.That(await RouteAsync(broker, "t", key), matches ? Is.EqualTo(new[] { "q" }) : Is.Empty);
    }

    [Test]
    public async Task Topic_SeveralMatchingBindings_OneCopyPerQueue()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("t", ExchangeType.Topic)
            .AddQueue("q")
            .Bind("t", "q", "#").Bind("t", "q", "order.*").Bind("t", "q", "order.created").Bind("t", "q", "#.created")
            .Build();
        Assert.That(await RouteAsync(broker, "t", "order.created"), Is.EqualTo(new[] { "q" }));
    }

    [Test]
    public async Task Headers_AllAndAny_CompareNumbersByValueNotStrings()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("h", ExchangeType.Headers)
            .AddQueue("all").AddQueue("any").AddQueue("presence").AddQueue("empty-all").AddQueue("empty-any")
            .Bind("h", "all", "", new Dictionary<string, object?> { ["x-match"] = "all", ["format"] = "pdf", ["size"] = 5, ["x-ignored"] = "zzz" })
            .Bind("h", "any", "", new Dictionary<string, object?> { ["x-match"] = "any", ["format"] = "pdf", ["size"] = 5L })
            .Bind("h", "presence", "", new Dictionary<string, object?> { ["flag"] = null })
            .Bind("h", "empty-all", "", new Dictionary<string, object?> { ["x-match"] = "all" })
            .Bind("h", "empty-any", "", new Dictionary<string, object?> { ["x-match"] = "any" })
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["size"] = (byte)5 }),
                Is.EqualTo(new[] { "all", "any", "empty-all" }), "5 as byte equals 5 as int and as long");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["size"] = "5" }),
                Is.EqualTo(new[] { "any", "empty-all" }), "a string never equals a number");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["size"] = 5UL }),
                Is.EqualTo(new[] { "any", "empty-all" }));
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["flag"] = false, ["size"] = 5.0 }),
                Is.EqualTo(new[] { "empty-all", "presence" }), "a double is not an integer, as in RabbitMQ");
            Assert.That(await RouteAsync(broker, "h", ""), Is.EqualTo(new[] { "empty-all" }));
        });
    }

    [Test]
    public async Task Headers_AllWithX_MatchesXArgumentsToo()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("h", ExchangeType.Headers)
            .AddQueue("all-with-x")
            .Bind("h", "all-with-x", "", new Dictionary<string, object?> { ["x-match"] = "all-with-x", ["format"] = "pdf", ["x-foo"] = "bar", ["x-size"] = 5 })
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["x-foo"] = "bar", ["x-size"] = 5L, ["other"] = 1 }),
                Is.EqualTo(new[] { "all-with-x" }), "every argument, x- ones included, present and equal");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["x-size"] = 5 }),
                Is.Empty, "x-foo is missing");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["x-foo"] = "baz", ["x-size"] = 5 }),
                Is.Empty, "x-foo differs");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-foo"] = "bar", ["x-size"] = 5 }),
                Is.Empty, "format is missing");
        });
    }

    [Test]
    public async Task Headers_AnyWithX_MatchesOnAnXArgumentAlone()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("h", ExchangeType.Headers)
            .AddQueue("any-with-x").AddQueue("only-x")
            .Bind("h", "any-with-x", "", new Dictionary<string, object?> { ["x-match"] = "any-with-x", ["format"] = "pdf", ["x-foo"] = "bar" })
            .Bind("h", "only-x", "", new Dictionary<string, object?> { ["x-match"] = "any-with-x", ["x-tenant"] = null })
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-foo"] = "bar", ["format"] = "doc" }),
                Is.EqualTo(new[] { "any-with-x" }), "only the x- argument matches");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf" }),
                Is.EqualTo(new[] { "any-with-x" }), "a plain argument still matches");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-foo"] = "baz", ["format"] = "doc" }),
                Is.Empty, "nothing matches");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-tenant"] = "acme" }),
                Is.EqualTo(new[] { "only-x" }), "a null x- argument means: header present");
        });
    }

    [Test]
    public async Task Headers_PlainAllAndAny_StillIgnoreXArguments()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("h", ExchangeType.Headers)
            .AddQueue("all").AddQueue("any").AddQueue("any-only-x").AddQueue("all-only-x")
            .Bind("h", "all", "", new Dictionary<string, object?> { ["x-match"] = "all", ["format"] = "pdf", ["x-foo"] = "bar" })
            .Bind("h", "any", "", new Dictionary<string, object?> { ["x-match"] = "any", ["format"] = "pdf", ["x-foo"] = "bar" })
            .Bind("h", "any-only-x", "", new Dictionary<string, object?> { ["x-match"] = "any", ["x-foo"] = "bar" })
            .Bind("h", "all-only-x", "", new Dictionary<string, object?> { ["x-match"] = "all", ["x-foo"] = "bar" })
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["format"] = "pdf", ["x-foo"] = "other" }),
                Is.EqualTo(new[] { "all", "all-only-x", "any" }), "x-foo is not compared");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-foo"] = "bar" }),
                Is.EqualTo(new[] { "all-only-x" }), "a matching x- header alone matches no plain argument ('all' of nothing is true, 'any' of nothing false)");
        });
    }

    [TestCase("all")]
    [TestCase("any")]
    [TestCase("all-with-x")]
    [TestCase("any-with-x")]
    public async Task Headers_XMatchArgument_IsNeverMatchedAsAHeader(string mode)
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("h", ExchangeType.Headers)
            .AddQueue("q")
            .Bind("h", "q", "", new Dictionary<string, object?> { ["x-match"] = mode })
            .Build();

        // With only x-match among the arguments there is nothing to match: 'all' of nothing is true, 'any' of nothing false,
        // whether or not the message carries an equal 'x-match' header.
        var expected = mode.StartsWith("all", StringComparison.Ordinal) ? new[] { "q" } : [];
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-match"] = mode }), Is.EqualTo(expected), "an equal x-match header");
            Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-match"] = "something else" }), Is.EqualTo(expected), "another x-match header");
            Assert.That(await RouteAsync(broker, "h", ""), Is.EqualTo(expected), "no headers");
        });
    }

    [Test]
    [CancelAfter(10_000)]
    public async Task Headers_WithXModes_AcceptedByRunTimeBind()
    {
        await using var broker = new MessageBrokerBuilder().AddExchange("h", ExchangeType.Headers).AddQueue("q").Build();
        await broker.Management.BindQueueAsync("h", "q", "", new Dictionary<string, object?> { ["x-match"] = "any-with-x", ["x-foo"] = "bar" });
        Assert.That(await RouteAsync(broker, "h", "", new Dictionary<string, object?> { ["x-foo"] = "bar" }), Is.EqualTo(new[] { "q" }));
    }

    [Test]
    public async Task DefaultExchange_RoutesByQueueName()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("a").AddQueue("b").Build();
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "", "b"), Is.EqualTo(new[] { "b" }));
            Assert.That(await RouteAsync(broker, "", "c"), Is.Empty);
        });
    }

    [Test]
    public async Task ExchangeToExchange_WithCycle_EachQueueOnce()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("x1", ExchangeType.Fanout)
            .AddExchange("x2", ExchangeType.Topic)
            .AddExchange("x3", ExchangeType.Direct)
            .AddQueue("q1").AddQueue("q2").AddQueue("q3")
            .BindExchange("x1", "x2")
            .BindExchange("x2", "x3", "#")
            .BindExchange("x3", "x1", "k")   // cycle x1 -> x2 -> x3 -> x1
            .BindExchange("x2", "x1", "#")   // and another
            .Bind("x1", "q1")
            .Bind("x2", "q2", "k")
            .Bind("x3", "q3", "k")
            .Bind("x3", "q1", "k")           // q1 reachable two ways
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "x3", "k"), Is.EqualTo(new[] { "q1", "q2", "q3" }));
            Assert.That(await RouteAsync(broker, "x1", "other"), Is.EqualTo(new[] { "q1" }));
        });
    }

    [Test]
    public async Task AlternateExchange_ReceivesWhatCannotBeRouted()
    {
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("unrouted", ExchangeType.Fanout)
            .AddExchange("main", ExchangeType.Direct, e => e.AlternateExchange = "unrouted")
            .AddQueue("good").AddQueue("lost")
            .Bind("main", "good", "ok")
            .Bind("unrouted", "lost")
            .Build();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RouteAsync(broker, "main", "ok"), Is.EqualTo(new[] { "good" }));
            Assert.That(await RouteAsync(broker, "main", "nope"), Is.EqualTo(new[] { "lost" }));
        });

        // Mandatory is satisfied by the alternate exchange's queue.
        var viaAe = await broker.PublishAsync("main", "nope", new Order(2), new PublishOptions { Mandatory = true });
        Assert.That(viaAe.RoutedQueues, Is.EqualTo(1));
    }
}
