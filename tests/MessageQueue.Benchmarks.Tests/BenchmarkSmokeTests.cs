using System.Reflection;
using BenchmarkDotNet.Attributes;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks.Tests;

/// <summary>
/// Runs every benchmark of the suite once in quick mode (in this process: one warm-up, three iterations), so the
/// benchmarks cannot rot: each class must produce results without an error, with the suite's own columns
/// (CPU per message everywhere; latency percentiles and lazy-queue figures where those scenarios report them).
/// Timing is not checked here; figures come from BenchmarkDotNet runs (benchmarks/README.md).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class BenchmarkSmokeTests
{
    [Test]
    [CancelAfter(420_000)]
    public void EveryBenchmarkClass_RunsInQuickMode_WithoutError()
    {
        var artifacts = Path.Combine(Path.GetTempPath(), $"mq-bench-smoke-{Guid.NewGuid():N}");
        Environment.SetEnvironmentVariable("MQ_BENCH_SMOKE", "1"); // the slowest scenarios move a twentieth of their messages
        try
        {
            var summaries = Program.Run(["--filter", "*"], Program.QuickJob(), artifacts);
            var reports = summaries.SelectMany(s => s.Reports).ToList();
            var classes = typeof(Program).Assembly.GetTypes()
                .Where(t => t.GetMethods().Any(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null))
                .Select(t => t.Name)
                .ToList();
            var ran = reports.Select(r => r.BenchmarkCase.Descriptor.Type.Name).Distinct().ToList();
            var metrics = reports.ToDictionary(r => r.BenchmarkCase.Descriptor.Type.Name + "." + r.BenchmarkCase.Descriptor.WorkloadMethod.Name, r => r.Metrics.Keys.ToList());
            using (Assert.EnterMultipleScope())
            {
                Assert.That(classes, Has.Count.GreaterThanOrEqualTo(6));
                Assert.That(ran, Is.EquivalentTo(classes), "every benchmark class ran");
                Assert.That(reports.Where(r => !r.Success).Select(r => r.BenchmarkCase.DisplayInfo), Is.Empty, "benchmarks that failed");
                Assert.That(summaries.Where(s => s.HasCriticalValidationErrors).Select(s => s.Title), Is.Empty);
                Assert.That(metrics.Where(m => !m.Value.Contains("cores")).Select(m => m.Key), Is.Empty, "every benchmark has its CPU time measured");
                Assert.That(reports.Where(r => !(CpuPerMessageColumn.Nanoseconds(summaries.First(s => s.Reports.Contains(r)), r.BenchmarkCase) > 0)).Select(r => r.BenchmarkCase.DisplayInfo), Is.Empty, "CPU per message is positive");
                Assert.That(metrics["LatencyBenchmarks.MessageQueueHandler"], Is.SupersetOf(new[] { "p50-us", "p99-us", "p999-us" }));
                Assert.That(metrics["LatencyBenchmarks.MassTransit"], Is.SupersetOf(new[] { "p50-us", "p99-us", "p999-us" }));
                Assert.That(metrics["LazyBenchmarks.FillAndDrain"], Is.SupersetOf(new[] { "heap-mb", "fill-msg-s", "drain-msg-s" }));
                Assert.That(metrics["LazyBenchmarks.FillAndDrainLiteDb"], Is.SupersetOf(new[] { "heap-mb", "fill-msg-s", "drain-msg-s" }));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("MQ_BENCH_SMOKE", null);
            if (Directory.Exists(artifacts))
            {
                Directory.Delete(artifacts, recursive: true);
            }
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task TheInterleavedRunner_RunsAClassInRotatedRounds_AndReportsRatiosPairedByRound()
    {
        var log = new StringWriter();
        var report = await InterleavedRunner.RunAsync("PointToPointBenchmarks", rounds: 3, log: log, warmupRounds: 1);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(report, Does.Contain("| raw Channel<T> (baseline) |").And.Contain("| 1.000x (1.000-1.000) |"));
            Assert.That(report, Does.Match(@"\| MessageQueue[^|]*\| [\d.]+ (ns|us) \| [\d.]+ (ns|us) \| [\d.]+x \([\d.]+-[\d.]+\) \|"));
            Assert.That(report, Does.Contain("Rounds flagged for busy neighbours"));
            Assert.That(log.ToString(), Does.Contain("round 1: load").And.Contain("round 3: load"));
        }

        Assert.That(() => InterleavedRunner.RunAsync("NoSuchBenchmarks", 1), Throws.ArgumentException.With.Message.Contains("NoSuchBenchmarks"));
    }

    /// <summary><c>--pool</c> pools the rounds of several <c>--csv</c> runs: ratios paired by round within each run, their
    /// median over all rounds with a bootstrap interval around it. Two runs of known times: the row takes 1.25x the
    /// baseline's time in every round (0.800x), so the median and both ends of the interval are 0.800x.</summary>
    [Test]
    public void PooledRatios_PairRoundsWithinEachRun_AndGiveTheMedianOverAllOfThem()
    {
        var files = new[] { Path.GetTempFileName(), Path.GetTempFileName() };
        try
        {
            for (var f = 0; f < files.Length; f++)
            {
                var lines = new List<string> { "round,category,row,ns,cpu_ns" };
                for (var round = 1; round <= 20; round++)
                {
                    var baseline = 1000.0 * (round + (f * 50)); // times drift between rounds and runs; ratios do not
                    lines.Add($"{round},\"c\",\"raw (baseline)\",{baseline},1");
                    lines.Add($"{round},\"c\",\"ours\",{baseline * 1.25},1");
                }

                File.WriteAllLines(files[f], lines);
            }

            var report = PooledRatios.Report(files, "c");
            Assert.That(report, Does.Contain("| ours | 40 | 0.800x (0.800-0.800) |").And.Contain("0.800x, 0.800x"));
            Assert.That(() => PooledRatios.Report(files, "no such category"), Throws.ArgumentException.With.Message.Contains("no baseline row"));
        }
        finally
        {
            foreach (var file in files)
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>The allocation counter (<c>--allocations</c>, issue 19 point 7) counts what a row allocates per
    /// operation: 0 and 3 for the probe's rows, within 5%. It needs the runtime's allocation events on from the start,
    /// so it runs in a process of its own, as benchmarks/README.md says to run it.</summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task TheAllocationCounter_CountsTheObjectsARowAllocatesPerOperation(CancellationToken cancellationToken)
    {
        var (output, errors, exitCode) = await CountAllocationsAsync(nameof(AllocationProbeBenchmarks), 20, cancellationToken);

        double PerOperation(string row) => double.Parse(
            System.Text.RegularExpressions.Regex.Match(output, $@"^{row}: ([\d.]+) objects per message", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);

        Assert.That(exitCode, Is.Zero, errors);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(PerOperation("no object"), Is.EqualTo(0).Within(0.05), output);
            Assert.That(PerOperation("three objects"), Is.EqualTo(3).Within(0.15), output);
            Assert.That(output, Does.Contain("System.Byte[]").And.Contain("System.Collections.Generic.List<Int32>"), "objects are counted by type");
        }
    }

    /// <summary>Issue 19, point 7: the transport allocates at most one object per message beyond the client's own
    /// (the message id when publishing, the delivery when consuming). Counted as the objects of the transport's row
    /// beyond the raw row's of the same type, leaving out the client's own types (<c>RabbitMQ.Client.*</c>), whose mix
    /// differs because the transport tracks confirms itself. The raw messages carry the same properties, so the
    /// client decodes the same strings for both.</summary>
    [Test]
    [CancelAfter(180_000)]
    [TestCase("publish, 1 outstanding", 10)]
    [TestCase("publish, 100 outstanding", 40)]
    [TestCase("consume, manual ack, prefetch 100", 60)]
    public async Task TheTransport_AllocatesAtMostOneObjectPerMessage_BeyondTheClientsOwn(string category, int calls, CancellationToken cancellationToken)
    {
        if (RabbitMqPeer.Unavailable() is { } why)
        {
            Assert.Ignore($"needs RabbitMQ (MQ_RABBITMQ_URL): {why}");
        }

        // Calls enough for a window of about two seconds a row: shorter ones lose too many of a type's objects.
        var (output, errors, exitCode) = await CountAllocationsAsync(nameof(TransportBenchmarks), calls, cancellationToken, category);
        Assert.That(exitCode, Is.Zero, errors);
        var rows = output.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var raw = Objects(rows, "raw RabbitMQ.Client:");
        var transport = Objects(rows, "MessageQueue on RabbitMQ:");

        // The counts of a row lose a few percent of its objects, more in a shorter row, so each row is scaled by a
        // client object both make exactly once per message: the confirm's record when publishing, the delivery's
        // event when consuming.
        var anchor = category.StartsWith("publish", StringComparison.Ordinal) ? "RabbitMQ.Client.Impl.Channel+PublisherConfirmationInfo" : "RabbitMQ.Client.Events.BasicDeliverEventArgs";
        var (rawScale, transportScale) = (1 / raw[anchor], 1 / transport[anchor]);
        var beyond = transport
            .Where(t => !t.Key.StartsWith("RabbitMQ.Client.", StringComparison.Ordinal) && !IsDebugStateMachine(t.Key))
            .Sum(t => Math.Max(0, (t.Value * transportScale) - (raw.GetValueOrDefault(t.Key) * rawScale)));
        TestContext.Out.WriteLine($"{category}: {beyond:F2} objects per message beyond the client's own");
        Assert.That(beyond, Is.LessThanOrEqualTo(1.4), $"objects per message beyond the client's own:\n{output}");
    }

    /// <summary>The tests run a Debug build, whose async methods allocate their state machines (classes, named
    /// <c>&lt;Method&gt;d__N</c>) on every call; a Release build's are structs, boxed only when they wait, and then
    /// named <c>AsyncStateMachineBox&lt;...&gt;</c>, which is counted.</summary>
    private static bool IsDebugStateMachine(string type) =>
        System.Text.RegularExpressions.Regex.IsMatch(type, @"^MessageQueue\.[\w.+<>]*\+<\w+>d__\d+(<[\w, ]*>)?$") && !type.Contains("AsyncStateMachineBox", StringComparison.Ordinal);

    private static Dictionary<string, double> Objects(string[] rows, string heading)
    {
        var at = Array.FindIndex(rows, r => r.StartsWith(heading, StringComparison.Ordinal));
        Assert.That(at, Is.GreaterThanOrEqualTo(0).And.LessThan(rows.Length - 1), heading);
        return rows[at + 1].Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.TrimStart('-', ' ').Split(' ', 2))
            .ToDictionary(p => p[1], p => double.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }

    /// <summary>Runs <c>--allocations</c> in a process of its own: it needs the runtime's allocation events on from
    /// the start, as benchmarks/README.md says to run it.</summary>
    private static async Task<(string Output, string Errors, int ExitCode)> CountAllocationsAsync(string className, int calls, CancellationToken cancellationToken, string? category = null)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location, "--allocations", className, calls.ToString(System.Globalization.CultureInfo.InvariantCulture), .. category is null ? Array.Empty<string>() : [category]])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_EnableEventPipe"] = "1";
        start.Environment["DOTNET_EventPipeOutputPath"] = Path.Combine(Path.GetTempPath(), $"mq-alloc-{Guid.NewGuid():N}.nettrace");
        start.Environment["DOTNET_EventPipeConfig"] = "Microsoft-Windows-DotNETRuntime:0x200000:5";
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        File.Delete(start.Environment["DOTNET_EventPipeOutputPath"]!);
        return (await output, errors, process.ExitCode);
    }
}
