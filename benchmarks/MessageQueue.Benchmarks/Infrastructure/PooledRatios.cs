using System.Globalization;
using System.Text;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// Pools the rounds of several interleaved runs (their <c>--csv</c> files) of one category: each row's ratio to the
/// baseline row is paired by round within its run (baseline time / row time, a throughput ratio as in the report), and
/// the pooled median of those ratios is given with a 95% bootstrap interval (rounds resampled with replacement, 2,000
/// times, fixed seed), plus each run's own median. One run's median moves by several percent from run to run on a
/// shared machine; several runs pooled say how far the difference is from noise.
/// </summary>
public static class PooledRatios
{
    public static string Report(IReadOnlyList<string> files, string? category = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(files.Count);
        var runs = files.Select(f => (File: f, Lines: Read(f, category))).ToList();
        var baseline = runs[0].Lines.Select(l => l.Row).FirstOrDefault(r => r.EndsWith(" (baseline)", StringComparison.Ordinal))
            ?? throw new ArgumentException($"'{files[0]}' has no baseline row{(category is null ? "" : $" in category '{category}'")}.", nameof(files));
        var rows = runs.SelectMany(r => r.Lines.Select(l => l.Row)).Distinct().Where(r => r != baseline).ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Pooled over {runs.Count} runs, baseline \"{baseline}\":");
        text.AppendLine();
        text.AppendLine("| Row | Rounds | Pooled median ratio (95% bootstrap) | Median time vs baseline | Each run's median ratio |");
        text.AppendLine("|---|---:|---|---|---|");
        foreach (var row in rows)
        {
            var ratios = new List<double>();
            var times = new List<double>();
            var baseTimes = new List<double>();
            var perRun = new List<string>();
            foreach (var (_, lines) in runs)
            {
                var byRound = lines.GroupBy(l => l.Round).Where(g => g.Any(l => l.Row == baseline) && g.Any(l => l.Row == row)).ToList();
                var runRatios = byRound.Select(g => g.First(l => l.Row == baseline).Ns / g.First(l => l.Row == row).Ns).ToList();
                ratios.AddRange(runRatios);
                times.AddRange(byRound.Select(g => g.First(l => l.Row == row).Ns));
                baseTimes.AddRange(byRound.Select(g => g.First(l => l.Row == baseline).Ns));
                perRun.Add(runRatios.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{InterleavedRunner.Median(runRatios):F3}x"));
            }

            var (low, high) = Bootstrap(ratios);
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row} | {ratios.Count} | {InterleavedRunner.Median(ratios):F3}x ({low:F3}-{high:F3}) | {InterleavedRunner.Median(times) / InterleavedRunner.Median(baseTimes):F3} | {string.Join(", ", perRun)} |");
        }

        return text.ToString();
    }

    private static List<(int Round, string Row, double Ns)> Read(string file, string? category) =>
        [.. File.ReadLines(file).Skip(1)
            .Select(line => line.Split('"'))
            .Where(p => p.Length >= 5 && (category is null || p[1] == category))
            .Select(p => (
                int.Parse(p[0].TrimEnd(','), CultureInfo.InvariantCulture),
                p[3],
                double.Parse(p[4].TrimStart(',').Split(',')[0], CultureInfo.InvariantCulture)))];

    private static (double Low, double High) Bootstrap(List<double> values)
    {
        var random = new Random(19);
        var medians = new double[2000];
        var sample = new double[values.Count];
        for (var b = 0; b < medians.Length; b++)
        {
            for (var i = 0; i < sample.Length; i++)
            {
                sample[i] = values[random.Next(values.Count)];
            }

            medians[b] = InterleavedRunner.Median(sample);
        }

        Array.Sort(medians);
        return (medians[(int)(medians.Length * 0.025)], medians[(int)(medians.Length * 0.975) - 1]);
    }
}
