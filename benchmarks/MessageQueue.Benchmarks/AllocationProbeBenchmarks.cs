using BenchmarkDotNet.Attributes;

namespace MessageQueue.Benchmarks;

/// <summary>
/// Rows that allocate a known number of objects per operation, to check the allocation counter
/// (<c>--allocations</c>, <see cref="Infrastructure.InterleavedRunner.CountAllocationsAsync"/>): none, and three (an
/// object, a 16-byte array, an empty list). tests/MessageQueue.Benchmarks.Tests runs the counter on them.
/// </summary>
[MemoryDiagnoser]
public class AllocationProbeBenchmarks
{
    public const int Operations = 200_000;

    private readonly object _shared = new();
    private object? _kept;

    /// <summary>Gets or sets how many times <see cref="Operations"/> each row runs (more for <c>--allocations</c>).</summary>
    public int Scale { get; set; } = 1;

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations, Description = "no object")]
    public void None()
    {
        for (var i = 0; i < Operations * Scale; i++)
        {
            _kept = _shared;
        }
    }

    [Benchmark(OperationsPerInvoke = Operations, Description = "three objects")]
    public void Three()
    {
        for (var i = 0; i < Operations * Scale; i++)
        {
            _kept = new object();
            _kept = new byte[16];
            _kept = new List<int>();
        }
    }
}
