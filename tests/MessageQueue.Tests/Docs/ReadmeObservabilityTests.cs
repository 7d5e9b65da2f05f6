using System.Diagnostics.Metrics;
using System.Reflection;
using System.Text.RegularExpressions;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Tests.Docs;

/// <summary>Issue 17, points 4 and 5: the README's observability section lists every instrument and every log event
/// the code has (and nothing else), with the level the code logs it at; log events follow the policy (stable unique
/// ids and names; handler failures and dead letters at Warning, store failures at Error, lifecycle at Information).</summary>
[TestFixture]
public sealed partial class ReadmeObservabilityTests
{
    private static string Section => ReadmeText.Between(ReadmeText.Readme, "## Observability", "## Performance");

    [Test]
    public void TheLogEventTable_IsEveryLoggerMessageOfTheEngine_WithItsNameAndLevel()
    {
        var inCode = typeof(MessageBrokerBuilder).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>()
            .Select(a => (a.EventId, a.EventName, a.Level))
            .OrderBy(e => e.EventId)
            .ToList();
        var inReadme = LogRow().Matches(Section)
            .Select(m => (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups[2].Value, Enum.Parse<LogLevel>(m.Groups[3].Value)))
            .ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(inCode.Select(e => e.EventId), Is.Unique, "event ids are unique");
            Assert.That(inCode.Select(e => e.EventName), Is.Unique.And.All.Not.Null, "every event has a stable name");
            Assert.That(inReadme, Is.EqualTo(inCode), "the README's table is the code's events");
            Assert.That(inCode.Where(e => e.Level == LogLevel.Information).Select(e => e.EventName), Is.EquivalentTo(new[] { "QueueRecovered", "BrokerStarted", "BrokerStopped" }), "lifecycle only at Information");
            Assert.That(inCode.Where(e => e.EventName!.StartsWith("Handler", StringComparison.Ordinal) || e.EventName == "OrderingKeyFailed").Select(e => e.Level), Is.All.EqualTo(LogLevel.Warning), "handler failures and dead letters at Warning");
            Assert.That(inCode.Where(e => e.EventName!.StartsWith("Store", StringComparison.Ordinal) && e.EventName.EndsWith("Failed", StringComparison.Ordinal)).Select(e => e.Level), Is.All.EqualTo(LogLevel.Error), "store failures at Error");
        }
    }

    [Test]
    public async Task TheInstrumentTable_IsEveryInstrumentOfTheMeter()
    {
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        var meter = broker.Engine().Context.Metrics.Meter;
        var names = new List<string>();
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, _) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    names.Add(instrument.Name);
                }
            };
            listener.Start();
        }

        var inReadme = InstrumentRow().Matches(Section).Select(m => m.Groups[1].Value).ToList();
        Assert.That(names, Has.Count.GreaterThan(15));
        Assert.That(inReadme, Is.EquivalentTo(names), "the README's instrument table is the meter's instruments");
    }

    [GeneratedRegex(@"^\| (\d+) \| (\w+) \| (\w+) \|", RegexOptions.Multiline)]
    private static partial Regex LogRow();

    [GeneratedRegex(@"^\| `([a-z_.]+)` \|", RegexOptions.Multiline)]
    private static partial Regex InstrumentRow();
}
