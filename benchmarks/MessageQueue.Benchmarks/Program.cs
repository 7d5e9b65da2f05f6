using System.Reflection;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using MessageQueue.Benchmarks.Infrastructure;

namespace MessageQueue.Benchmarks;

public static class Program
{
    /// <summary>Runs the benchmarks chosen on the command line (see benchmarks/README.md). <c>--quick</c> runs
    /// each benchmark in this process with one warm-up and three iterations (a smoke run of the whole suite in a
    /// few minutes; the figures are rougher). BenchmarkDotNet exits 0 even when a benchmark throws, so this
    /// returns 1 when any report failed.</summary>
    public static int Main(string[] args)
    {
        if (args is ["--interleaved", var className, ..])
        {
            return Interleaved(className, args);
        }

        if (args is ["--allocations", var countClass, ..])
        {
            var calls = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 5;
            var category = args.Length > 3 ? args[3] : null;
            Console.WriteLine(InterleavedRunner.CountAllocationsAsync(countClass, calls, category).GetAwaiter().GetResult());
            return 0;
        }

        if (args is ["--pool", .. var pooled])
        {
            // --pool run1.csv run2.csv ... [--category "name"]: the rounds of several --interleaved --csv runs pooled.
            var poolCategory = pooled.SkipWhile(a => a != "--category").Skip(1).FirstOrDefault();
            Console.WriteLine(PooledRatios.Report([.. pooled.TakeWhile(a => a != "--category")], poolCategory));
            return 0;
        }

        if (args is ["--repeat", var repeatClass, var repeatMethod, ..])
        {
            var seconds = args.Length > 3 ? double.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 20;
            var (calls, median, bytes) = InterleavedRunner.RepeatAsync(repeatClass, repeatMethod, seconds).GetAwaiter().GetResult();
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{repeatClass}.{repeatMethod}: {calls} calls, median {median:F1} ns and {bytes:F0} B allocated per message"));
            return 0;
        }

        var quick = args.Contains("--quick");
        var summaries = Run([.. args.Where(a => a != "--quick")], quick ? QuickJob() : null);
        var failed = summaries.SelectMany(s => s.Reports).Where(r => !r.Success).ToList();
        foreach (var report in failed)
        {
            Console.Error.WriteLine($"Benchmark failed: {report.BenchmarkCase.DisplayInfo}");
        }

        return failed.Count > 0 || summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
    }

    // --repeat Class Method [seconds]: one row over and over (InterleavedRunner.RepeatAsync), for a profiler.

    /// <summary><c>--interleaved Class [--rounds N] [--warmup N] [--category "name"] [--out file.md] [--csv file.csv]</c>: the class's
    /// rows in rotated rounds in this process (<see cref="InterleavedRunner"/>); the report goes to the console and, with
    /// <c>--out</c>, to a Markdown file; <c>--csv</c> writes each row's time in each round.</summary>
    private static int Interleaved(string className, string[] args)
    {
        string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var rounds = int.Parse(Option("--rounds") ?? "10", System.Globalization.CultureInfo.InvariantCulture);
        var warmup = int.Parse(Option("--warmup") ?? "3", System.Globalization.CultureInfo.InvariantCulture);
        using var csv = Option("--csv") is { } csvFile ? new StreamWriter(csvFile) : null;
        csv?.WriteLine("round,category,row,ns,cpu_ns");
        var report = InterleavedRunner.RunAsync(className, rounds, Option("--category"), Console.Out, warmup, csv).GetAwaiter().GetResult();
        Console.WriteLine(report);
        if (Option("--out") is { } file)
        {
            File.WriteAllText(file, report);
        }

        return 0;
    }

    /// <summary>One warm-up and three iterations, in this process (no project to build, no process per benchmark).</summary>
    public static Job QuickJob() => Job.Dry
        .WithWarmupCount(1)
        .WithIterationCount(3)
        .WithToolchain(InProcessEmitToolchain.Instance)
        .WithId("Quick");

    /// <summary>Runs benchmarks with the suite's columns (CPU per message, scenario figures, memory) and, when
    /// <paramref name="job"/> is given, that job for every class.</summary>
    public static IReadOnlyList<Summary> Run(string[] args, Job? job, string? artifacts = null)
    {
        IConfig config = DefaultConfig.Instance
            .AddDiagnoser(ScenarioDiagnoser.Instance)
            .AddColumn(CpuPerMessageColumn.Instance)
            .AddExporter(PlotExporter.Instance);
        if (job is not null)
        {
            config = config.AddJob(job.AsDefault()).WithOptions(ConfigOptions.DisableOptimizationsValidator);
        }

        if (artifacts is not null)
        {
            config = config.WithArtifactsPath(artifacts);
        }

        if (RabbitMqPeer.Unavailable() is { } reason)
        {
            Console.WriteLine($"// RabbitMQ benchmarks skipped: {reason}.");
            config = config.AddFilter(new SimpleFilter(b => b.Descriptor.WorkloadMethod.GetCustomAttribute<RequiresRabbitMqAttribute>() is null));
        }

        return [.. BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config)];
    }
}
