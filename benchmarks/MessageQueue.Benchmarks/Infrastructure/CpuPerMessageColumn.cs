using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary><b>CPU/msg</b>: process CPU time per message (all threads), as cores busy during the actual iterations
/// (<see cref="ScenarioDiagnoser"/>) times the mean wall time per message. Steadier than wall time on a small
/// shared machine, and it shows work that wall time hides on other cores.</summary>
public sealed class CpuPerMessageColumn : IColumn
{
    public static readonly CpuPerMessageColumn Instance = new();

    public string Id => "CpuPerMessage";

    public string ColumnName => "CPU/msg (ns)";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Process CPU time (all threads) per message: cores busy x mean time per message";

    /// <summary>CPU nanoseconds per message, or NaN when not measured.</summary>
    public static double Nanoseconds(Summary summary, BenchmarkCase benchmarkCase) =>
        summary[benchmarkCase] is { ResultStatistics: { } stats } report && report.Metrics.TryGetValue(ScenarioDiagnoser.CoresId, out var cores)
            ? cores.Value * stats.Mean
            : double.NaN;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var ns = Nanoseconds(summary, benchmarkCase);
        return double.IsNaN(ns) ? "-" : ns.ToString("N1", style.CultureInfo) + (style.PrintUnitsInContent ? " ns" : "");
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
