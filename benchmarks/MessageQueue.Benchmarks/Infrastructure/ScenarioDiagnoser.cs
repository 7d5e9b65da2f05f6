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
/// Adds two kinds of columns: <b>CPU/msg</b>, the benchmark process's CPU time (all threads: producers, consumers,
/// the store writer, the GC) over the actual iterations divided by the messages they moved, which is steadier
/// than wall time on a small shared machine; and the figures benchmarks report through <see cref="ScenarioMetrics"/>.
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

    private static readonly Descriptor Cpu = new("cpu-ns", "CPU/msg", "ns", "Process CPU time (all threads) per message over the actual iterations", false, 0);

    private readonly Dictionary<BenchmarkCase, TimeSpan> _cpuStart = [];
    private readonly Dictionary<BenchmarkCase, TimeSpan> _cpu = [];

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
                _cpuStart[key] = process.TotalProcessorTime;
                break;
            case HostSignal.AfterActualRun when _cpuStart.TryGetValue(key, out var start):
                process.Refresh();
                _cpu[key] = process.TotalProcessorTime - start;
                break;
        }
    }

    public IEnumerable<Metric> ProcessResults(DiagnoserResults results)
    {
        var key = results.BenchmarkCase;
        if (_cpu.TryGetValue(key, out var cpu) && results.TotalOperations > 0)
        {
            yield return new Metric(Cpu, cpu.TotalNanoseconds / results.TotalOperations);
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

    private sealed class Descriptor(string id, string name, string unit, string legend, bool greaterIsBetter, int priority) : IMetricDescriptor
    {
        public string Id => id;

        public string DisplayName => name;

        public string Legend => legend;

        public string NumberFormat => "N1";

        public UnitType UnitType => unit == "ns" ? UnitType.Time : UnitType.Dimensionless;

        public string Unit => unit;

        public bool TheGreaterTheBetter => greaterIsBetter;

        public int PriorityInCategory => priority;

        public bool GetIsAvailable(Metric metric) => true;
    }
}
