using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// Runs the rows of one benchmark class in rotated rounds in this process, after warm-up rounds that are not
/// counted (3 by default: the JIT's tiers settle): every round runs each row once (one
/// invocation: <c>OperationsPerInvoke</c> messages), starting one row later than the round before, so that a slow
/// spell of the machine falls on different rows. Ratios are paired by round (each row against its category's
/// baseline row of the same round), then summarised as median and range. Each round records the load average and
/// the CPU other processes used meanwhile (from <c>/proc/stat</c> minus this process), and flags rounds whose
/// neighbours took more than a quarter of the machine; medians are given over all rounds and over unflagged ones.
/// BenchmarkDotNet's classes stay the source of per-operation detail and allocations; this gives ratios that one
/// slow minute cannot bend.
/// </summary>
public static partial class InterleavedRunner
{
    /// <summary>Runs <paramref name="className"/>'s rows (those of <paramref name="category"/>, or all) for
    /// <paramref name="rounds"/> rounds and returns the Markdown report; <paramref name="csv"/>, when given, gets one
    /// line per row and round (<c>round,category,row,ns,cpu_ns</c>, per message), to pool rounds across runs.</summary>
    public static async Task<string> RunAsync(string className, int rounds, string? category = null, TextWriter? log = null, int warmupRounds = 3, TextWriter? csv = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        var type = typeof(InterleavedRunner).Assembly.GetTypes().SingleOrDefault(t => t.Name == className)
            ?? throw new ArgumentException($"No benchmark class named '{className}'.", nameof(className));
        var rows = Rows(type, category);
        if (rows.Count == 0)
        {
            throw new ArgumentException($"'{className}' has no rows{(category is null ? "" : $" in category '{category}'")} to run here.", nameof(category));
        }

        var instance = Activator.CreateInstance(type)!;
        foreach (var row in rows)
        {
            await CallAsync(instance, type, typeof(GlobalSetupAttribute), row.Method).ConfigureAwait(false);
        }

        for (var w = 0; w < warmupRounds; w++)
        {
            foreach (var row in rows)
            {
                await InvokeAsync(instance, type, row).ConfigureAwait(false); // JIT tiers, caches, pools
            }
        }

        var results = rows.ToDictionary(r => r, _ => new List<(double Ns, double CpuNs)>());
        var flagged = new List<bool>();
        var notes = new List<string>();
        for (var round = 0; round < rounds; round++)
        {
            var before = Machine.Read();
            for (var k = 0; k < rows.Count; k++)
            {
                var row = rows[(round + k) % rows.Count];
                var measured = await InvokeAsync(instance, type, row).ConfigureAwait(false);
                results[row].Add(measured);
                csv?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{round + 1},\"{row.Category}\",\"{row.Name}{(row.Baseline ? " (baseline)" : "")}\",{measured.Ns:F1},{measured.CpuNs:F1}"));
            }

            var after = Machine.Read();
            var neighbours = Machine.NeighbourShare(before, after);
            flagged.Add(neighbours > 0.25);
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"round {round + 1}: load {after.Load1:F2}, neighbours {neighbours:P0}{(neighbours > 0.25 ? " (flagged)" : "")}"));
            log?.WriteLine(notes[^1]);
        }

        foreach (var row in rows)
        {
            await CallAsync(instance, type, typeof(GlobalCleanupAttribute), row.Method).ConfigureAwait(false);
        }

        return Report(className, rounds, rows, results, flagged, notes);
    }

    /// <summary>Runs one row of <paramref name="className"/> (its method name) over and over for
    /// <paramref name="seconds"/> seconds, after its setup and one uncounted call, and returns how many calls ran and
    /// the median time and the bytes allocated (by every thread) per message: a steady load to attach a profiler to
    /// (<c>perf record</c>, <c>dotnet-trace</c>).</summary>
    public static async Task<(int Calls, double MedianNs, double BytesPerMessage)> RepeatAsync(string className, string method, double seconds)
    {
        var type = typeof(InterleavedRunner).Assembly.GetTypes().SingleOrDefault(t => t.Name == className)
            ?? throw new ArgumentException($"No benchmark class named '{className}'.", nameof(className));
        var row = Rows(type, category: null).SingleOrDefault(r => r.Method.Name == method)
            ?? throw new ArgumentException($"'{className}' has no benchmark method named '{method}' to run here.", nameof(method));
        var instance = Activator.CreateInstance(type)!;
        await CallAsync(instance, type, typeof(GlobalSetupAttribute), row.Method).ConfigureAwait(false);
        await InvokeAsync(instance, type, row).ConfigureAwait(false);
        var times = new List<double>();
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            times.Add((await InvokeAsync(instance, type, row).ConfigureAwait(false)).Ns);
        }

        var bytes = (double)(GC.GetTotalAllocatedBytes(precise: true) - allocated) / times.Count / row.Operations;
        await CallAsync(instance, type, typeof(GlobalCleanupAttribute), row.Method).ConfigureAwait(false);
        return (times.Count, Median(times), bytes);
    }

    internal sealed record Row(MethodInfo Method, string Name, string Category, bool Baseline, int Operations);

    private static List<Row> Rows(Type type, string? category)
    {
        var rabbitReason = RabbitMqPeer.Unavailable();
        return [.. type.GetMethods()
            .Select(m => (Method: m, Bench: m.GetCustomAttribute<BenchmarkAttribute>()))
            .Where(x => x.Bench is not null)
            .Where(x => rabbitReason is null || x.Method.GetCustomAttribute<RequiresRabbitMqAttribute>() is null)
            .Select(x => new Row(
                x.Method,
                x.Bench!.Description ?? x.Method.Name,
                string.Join(", ", x.Method.GetCustomAttribute<BenchmarkCategoryAttribute>()?.Categories ?? []),
                x.Bench.Baseline,
                Math.Max(1, x.Bench.OperationsPerInvoke)))
            .Where(r => category is null || r.Category == category)];
    }

    private static async Task<(double Ns, double CpuNs)> InvokeAsync(object instance, Type type, Row row)
    {
        await CallAsync(instance, type, typeof(IterationSetupAttribute), row.Method).ConfigureAwait(false);
        GC.Collect(); // as BenchmarkDotNet does before each iteration: no row pays for the last one's garbage
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        await AwaitResult(row.Method.Invoke(instance, null)).ConfigureAwait(false);
        clock.Stop();
        var cpuUsed = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        await CallAsync(instance, type, typeof(IterationCleanupAttribute), row.Method).ConfigureAwait(false);
        return (clock.Elapsed.TotalNanoseconds / row.Operations, cpuUsed.TotalNanoseconds / row.Operations);
    }

    /// <summary>Calls the class's setup or cleanup methods of one kind that apply to <paramref name="target"/>
    /// (no <c>Targets</c>, or <c>Targets</c> naming it).</summary>
    private static async Task CallAsync(object instance, Type type, Type attribute, MethodInfo target)
    {
        foreach (var method in type.GetMethods())
        {
            if (method.GetCustomAttribute(attribute) is TargetedAttribute a && (a.Targets is not { Length: > 0 } targets || targets.Contains(target.Name)))
            {
                await AwaitResult(method.Invoke(instance, null)).ConfigureAwait(false);
            }
        }
    }

    private static Task AwaitResult(object? result) => result switch
    {
        Task task => task,
        ValueTask valueTask => valueTask.AsTask(),
        _ => Task.CompletedTask,
    };

    private static string Report(string className, int rounds, List<Row> rows, Dictionary<Row, List<(double Ns, double CpuNs)>> results, List<bool> flagged, List<string> notes)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {className}: {rounds} interleaved rounds, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores");
        text.AppendLine();
        text.AppendLine("| Category | Row | Median per message | CPU per message | Throughput vs baseline: median (range) | Median, unflagged rounds |");
        text.AppendLine("|---|---|---:|---:|---|---|");
        foreach (var group in rows.GroupBy(r => r.Category))
        {
            var baseline = group.FirstOrDefault(r => r.Baseline);
            foreach (var row in group)
            {
                var times = results[row];
                string ratio = "", clean = "";
                if (baseline is not null)
                {
                    var ratios = times.Select((t, i) => results[baseline][i].Ns / t.Ns).ToList();
                    var unflagged = ratios.Where((_, i) => !flagged[i]).ToList();
                    ratio = string.Create(CultureInfo.InvariantCulture, $"{Median(ratios):F3}x ({ratios.Min():F3}-{ratios.Max():F3})");
                    clean = unflagged.Count == 0 ? "no unflagged round" : string.Create(CultureInfo.InvariantCulture, $"{Median(unflagged):F3}x ({unflagged.Count} rounds)");
                }

                text.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key} | {row.Name}{(row.Baseline ? " (baseline)" : "")} | {Format(Median(times.Select(t => t.Ns)))} | {Format(Median(times.Select(t => t.CpuNs)))} | {ratio} | {clean} |");
            }
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Rounds flagged for busy neighbours (other processes over 25% of the machine): {flagged.Count(f => f)} of {rounds}.");
        text.AppendLine();
        foreach (var note in notes)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {note}");
        }

        return text.ToString();
    }

    /// <summary>The median (NaN when there is none).</summary>
    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Format(double ns) =>
        ns >= 1_000_000 ? string.Create(CultureInfo.InvariantCulture, $"{ns / 1_000_000:F2} ms")
        : ns >= 1_000 ? string.Create(CultureInfo.InvariantCulture, $"{ns / 1_000:F2} us")
        : string.Create(CultureInfo.InvariantCulture, $"{ns:F1} ns");

    /// <summary>The machine's busy time and this process's, from /proc (zeros elsewhere: nothing is flagged).</summary>
    private readonly record struct Machine(long BusyTicks, long TotalTicks, long OwnTicks, double Load1)
    {
        public static Machine Read()
        {
            try
            {
                var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(long.Parse).ToArray();
                var idle = cpu[3] + (cpu.Length > 4 ? cpu[4] : 0);
                var own = File.ReadAllText("/proc/self/stat");
                var fields = own[(own.LastIndexOf(')') + 2)..].Split(' ');
                var ownTicks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture); // utime, stime
                var load = double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
                return new Machine(cpu.Sum() - idle, cpu.Sum(), ownTicks, load);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                return default;
            }
        }

        /// <summary>The share of the machine other processes kept busy between two readings.</summary>
        public static double NeighbourShare(Machine before, Machine after)
        {
            var total = after.TotalTicks - before.TotalTicks;
            return total <= 0 ? 0 : Math.Max(0, (after.BusyTicks - before.BusyTicks) - (after.OwnTicks - before.OwnTicks)) / (double)total;
        }
    }
}
