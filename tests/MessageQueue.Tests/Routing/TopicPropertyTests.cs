using FsCheck;
using FsCheck.Fluent;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Routing;

/// <summary>Topic routing checked against a plain reference matcher on random patterns and keys.</summary>
[TestFixture]
public sealed class TopicPropertyTests
{
    // Small alphabets so that matches are frequent; "" makes empty words.
    private static readonly Gen<string> PatternWord = Gen.Elements("a", "b", "*", "#", "");
    private static readonly Gen<string> KeyWord = Gen.Elements("a", "b", "c", "");

    private static Gen<string> Joined(Gen<string> word) =>
        Gen.Choose(0, 5).SelectMany(n => Gen.ArrayOf(word, n)).Select(words => string.Join('.', words));

    /// <summary>The reference: RabbitMQ's split (empty key = no words) and a direct recursive match.</summary>
    private static bool ReferenceMatch(string pattern, string key) =>
        Match(Split(pattern), 0, Split(key), 0);

    private static string[] Split(string s) => s.Length == 0 ? [] : s.Split('.');

    private static bool Match(string[] p, int i, string[] k, int j)
    {
        if (i == p.Length)
        {
            return j == k.Length;
        }

        return p[i] switch
        {
            "#" => Match(p, i + 1, k, j) || (j < k.Length && Match(p, i, k, j + 1)),
            "*" => j < k.Length && Match(p, i + 1, k, j + 1),
            _ => j < k.Length && k[j] == p[i] && Match(p, i + 1, k, j + 1),
        };
    }

    [Test]
    [CancelAfter(60_000)]
    public void TopicExchange_RandomBindingsAndKeys_AgreesWithReferenceMatcher()
    {
        var scenario =
            from patterns in Gen.Choose(1, 6).SelectMany(n => Gen.ArrayOf(Joined(PatternWord), n))
            from keys in Gen.ArrayOf(Joined(KeyWord), 8)
            select (patterns, keys);

        Prop.ForAll(scenario.ToArbitrary(), s =>
        {
            var (patterns, keys) = s;
            var builder = new MessageBrokerBuilder().AddExchange("t", ExchangeType.Topic);
            for (var i = 0; i < patterns.Length; i++)
            {
                builder.AddQueue($"q{i}").Bind("t", $"q{i}", patterns[i]);
            }

            var broker = builder.Build();
            try
            {
                foreach (var key in keys)
                {
                    var before = Enumerable.Range(0, patterns.Length).Select(i => broker.Management.GetQueueInfo($"q{i}").Published).ToArray();
                    var result = broker.PublishAsync("t", key, new Order(1)).AsTask().GetAwaiter().GetResult();
                    for (var i = 0; i < patterns.Length; i++)
                    {
                        var got = broker.Management.GetQueueInfo($"q{i}").Published - before[i];
                        var expected = ReferenceMatch(patterns[i], key) ? 1 : 0;
                        if (got != expected)
                        {
                            throw new AssertionException($"pattern '{patterns[i]}' key '{key}': routed {got}, reference says {expected}");
                        }
                    }

                    var distinct = Enumerable.Range(0, patterns.Length).Count(i => ReferenceMatch(patterns[i], key));
                    if (result.RoutedQueues != distinct)
                    {
                        throw new AssertionException($"key '{key}': RoutedQueues {result.RoutedQueues}, expected {distinct}");
                    }
                }
            }
            finally
            {
                broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Test]
    public void ReferenceMatcher_SanityCases()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ReferenceMatch("a.#", "a"), Is.True);
            Assert.That(ReferenceMatch("*", ""), Is.False);
            Assert.That(ReferenceMatch("#", ""), Is.True);
            Assert.That(ReferenceMatch("a.*.c", "a.b.c"), Is.True);
            Assert.That(ReferenceMatch("a.*.c", "a.b.d"), Is.False);
        });
    }
}
