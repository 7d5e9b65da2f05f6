using System.Diagnostics;
using BenchmarkDotNet.Analysers;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Validators;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// Adds two kinds of columns: <b>Cores</b>, the benchmark process's CPU time (all threads: producers, consumers,
/// the store writer, the GC) over the actual iterations divided by their wall time, from which
/// <see cref="CpuPerMessageColumn"/> derives <b>CPU/msg</b> (cores × mean time per message; BenchmarkDotNet's
/// operation count for diagnosers includes warm-up and pilot runs, so it cannot be divided by directly); and the
/// figures benchmarks report through <see cref="ScenarioMetrics"/>.
/// </summary>
public sealed class ScenarioDiagnoser : IDiagnoser
{
    public static readonly ScenarioDiagnoser Instance = new();

    private static readonly Dictionary<string, Descriptor> Known = new(StringComparer.Ordinal)
    {
        ["p50-us"] = new("p50-us", "p50", "us", "Median publish-to-handler latency", false, 10),
        ["p99-us"] = new("p99-us", "p99", "us", "99th percentile publish-to-handler latency", false, 11),
        ["p999-us"] = new("p999-us", "p99.9", "us", "99.9th percentile publish-to-handler latency", false, 12),
        ["heap-mb"] = new("heap-mb", "Heap (MB)", "MB", "Managed heap with the backlog queued (GC.GetTotalMemory(true))", false, 20),
        ["drain-msg-s"] = new("drain-msg-s", "Drain (msg/s)", "msg/s", "Messages consumed per second from the full backlog", true, 21),
        ["fill-msg-s"] = new("fill-msg-s", "Fill (msg/s)", "msg/s", "Messages published per second into the backlog", true, 22),
    };

    internal const string CoresId = "cores";

    private static readonly Descriptor Cores = new(CoresId, "Cores", "", "CPU cores busy on average during the actual iterations (process CPU time / wall time)", false, 0, "N2");

    private readonly Dictionary<BenchmarkCase, (TimeSpan Cpu, long Wall)> _start = [];
    private readonly Dictionary<BenchmarkCase, double> _cores = [];

    public IEnumerable<string> Ids => ["MessageQueueScenario"];

    public IEnumerable<IExporter> Exporters => [];

    public IEnumerable<IAnalyser> Analysers => [];

    public RunMode GetRunMode(BenchmarkCase benchmarkCase) => RunMode.NoOverhead;

    public bool RequiresBlockingAcknowledgments(BenchmarkCase benchmarkCase) => true;

    public void Handle(HostSignal signal, DiagnoserActionParameters parameters)
    {
        var process = parameters.Process;
        var key = parameters.BenchmarkCase;
        switch (signal)
        {
            case HostSignal.BeforeAnythingElse:
                ScenarioMetrics.Clear(key.Descriptor.Type.Name, key.Descriptor.WorkloadMethod.Name);
                break;
            case HostSignal.BeforeActualRun:
                process.Refresh();
                _start[key] = (process.TotalProcessorTime, Stopwatch.GetTimestamp());
                break;
            case HostSignal.AfterActualRun when _start.TryGetValue(key, out var start):
                process.Refresh();
                var wall = Stopwatch.GetElapsedTime(start.Wall);
                if (wall > TimeSpan.Zero)
                {
                    _cores[key] = (process.TotalProcessorTime - start.Cpu) / wall;
                }

                break;
        }
    }

    public IEnumerable<Metric> ProcessResults(DiagnoserResults results)
    {
        var key = results.BenchmarkCase;
        if (_cores.TryGetValue(key, out var cores))
        {
            yield return new Metric(Cores, cores);
        }

        foreach (var (name, value) in ScenarioMetrics.Read(key.Descriptor.Type.Name, key.Descriptor.WorkloadMethod.Name))
        {
            if (Known.TryGetValue(name, out var descriptor))
            {
                yield return new Metric(descriptor, value);
            }
        }
    }

    public void DisplayResults(ILogger logger)
    {
    }

    public IEnumerable<ValidationError> Validate(ValidationParameters validationParameters) => [];

    private sealed class Descriptor(string id, string name, string unit, string legend, bool greaterIsBetter, int priority, string format = "N1") : IMetricDescriptor
    {
        public string Id => id;

        public string DisplayName => name;

        public string Legend => legend;

        public string NumberFormat => format;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Unit => unit;

        public bool TheGreaterTheBetter => greaterIsBetter;

        public int PriorityInCategory => priority;

        public bool GetIsAvailable(Metric metric) => true;
    }
}
