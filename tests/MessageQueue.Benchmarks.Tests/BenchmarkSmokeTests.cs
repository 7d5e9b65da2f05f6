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

    /// <summary>The allocation counter (<c>--allocations</c>, issue 19 point 7) counts what a row allocates per
    /// operation: 0 and 3 for the probe's rows, within 5%. It needs the runtime's allocation events on from the start,
    /// so it runs in a process of its own, as benchmarks/README.md says to run it.</summary>
    [Test]
    [CancelAfter(120_000)]
    public async Task TheAllocationCounter_CountsTheObjectsARowAllocatesPerOperation(CancellationToken cancellationToken)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location, "--allocations", nameof(AllocationProbeBenchmarks), "20"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_EnableEventPipe"] = "1";
        start.Environment["DOTNET_EventPipeOutputPath"] = Path.Combine(Path.GetTempPath(), $"mq-alloc-{Guid.NewGuid():N}.nettrace");
        start.Environment["DOTNET_EventPipeConfig"] = "Microsoft-Windows-DotNETRuntime:0x200000:5";
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        File.Delete(start.Environment["DOTNET_EventPipeOutputPath"]!);

        double PerOperation(string row) => double.Parse(
            System.Text.RegularExpressions.Regex.Match(output, $@"^{row}: ([\d.]+) objects per message", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);

        Assert.That(process.ExitCode, Is.Zero, errors);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(PerOperation("no object"), Is.EqualTo(0).Within(0.05), output);
            Assert.That(PerOperation("three objects"), Is.EqualTo(3).Within(0.15), output);
            Assert.That(output, Does.Contain("System.Byte[]").And.Contain("System.Collections.Generic.List<Int32>"), "objects are counted by type");
        }
    }
}
