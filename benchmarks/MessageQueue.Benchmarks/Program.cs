using BenchmarkDotNet.Running;

namespace MessageQueue.Benchmarks;

public static class Program
{
    /// <summary>Runs the benchmarks chosen on the command line (see benchmarks/README.md). BenchmarkDotNet exits 0
    /// even when a benchmark throws, so this returns 1 when any report failed.</summary>
    public static int Main(string[] args)
    {
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        var failed = summaries.SelectMany(s => s.Reports).Where(r => !r.Success).ToList();
        foreach (var report in failed)
        {
            Console.Error.WriteLine($"Benchmark failed: {report.BenchmarkCase.DisplayInfo}");
        }

        return failed.Count > 0 || summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
    }
}
