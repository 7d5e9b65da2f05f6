namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>
/// The smoke test (tests/MessageQueue.Benchmarks.Tests) runs every benchmark once to prove it still works, not to
/// measure it. It sets <c>MQ_BENCH_SMOKE=1</c>, and the slowest scenarios (a million-message lazy backlog, synced
/// commits) then move a twentieth of their messages; their per-message figures in such a run mean nothing.
/// </summary>
public static class Smoke
{
    public static bool IsOn => Environment.GetEnvironmentVariable("MQ_BENCH_SMOKE") == "1";

    /// <summary>The message count to use: <paramref name="messages"/>, or a twentieth of it in a smoke run.</summary>
    public static int Scale(int messages) => IsOn ? Math.Max(100, messages / 20) : messages;
}
