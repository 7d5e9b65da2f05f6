using System.Globalization;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// Writes <c>*-report-plot.csv</c> next to BenchmarkDotNet's own exports: one line per benchmark with plain
/// numbers (no units), semicolon-separated, for <c>benchmarks/plot.sh</c> (gnuplot): class, category, method,
/// median ns per message, messages per second, bytes and CPU ns per message, ratio to the group's baseline.
/// </summary>
public sealed class PlotExporter : ExporterBase
{
    public static readonly PlotExporter Instance = new();

    protected override string FileExtension => "csv";

    protected override string FileNameSuffix => "-plot";

    public override void ExportToLog(Summary summary, ILogger logger)
    {
        logger.WriteLine("class;category;method;median_ns;msg_per_s;bytes_per_msg;cpu_ns_per_msg;ratio");
        foreach (var report in summary.Reports.Where(r => r.Success && r.ResultStatistics is not null))
        {
            var benchmark = report.BenchmarkCase;
            var median = report.ResultStatistics!.Median;
            var bytes = report.GcStats.GetBytesAllocatedPerOperation(benchmark) ?? 0;
            var cpu = CpuPerMessageColumn.Nanoseconds(summary, benchmark);
            var ratio = summary.GetBaseline(summary.GetLogicalGroupKey(benchmark)) is { } baseline
                && summary[baseline]?.ResultStatistics is { } b ? median / b.Median : double.NaN;
            logger.WriteLine(string.Join(';',
                benchmark.Descriptor.Type.Name,
                string.Join('/', benchmark.Descriptor.Categories),
                benchmark.Descriptor.WorkloadMethodDisplayInfo.Trim('\''),
                F(median),
                F(1e9 / median),
                F(bytes),
                F(cpu),
                F(ratio)));
        }
    }

    private static string F(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
