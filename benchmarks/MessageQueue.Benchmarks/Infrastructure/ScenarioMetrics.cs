using System.Globalization;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// Figures a benchmark measures itself (latency percentiles, heap size, drain rate), which BenchmarkDotNet's own
/// columns cannot show. The benchmark process writes them to a file per benchmark; <see cref="ScenarioDiagnoser"/>
/// (in the host process) reads them back into the summary table and the CSV export.
/// </summary>
public static class ScenarioMetrics
{
    private static string Directory => Path.Combine(Path.GetTempPath(), "mq-bench-metrics");

    internal static string FileFor(string type, string method) => Path.Combine(Directory, $"{type}.{method}.txt");

    /// <summary>Records a figure of the running benchmark (the last one recorded under a name wins).</summary>
    public static void Report(Type benchmark, string method, string name, double value)
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.AppendAllText(FileFor(benchmark.Name, method), $"{name}={value.ToString("R", CultureInfo.InvariantCulture)}\n");
    }

    internal static Dictionary<string, double> Read(string type, string method)
    {
        var path = FileFor(type, method);
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return values;
        }

        foreach (var line in File.ReadAllLines(path))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && double.TryParse(line.AsSpan(eq + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            {
                values[line[..eq]] = v;
            }
        }

        return values;
    }

    internal static void Clear(string type, string method)
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.Delete(FileFor(type, method));
    }
}
