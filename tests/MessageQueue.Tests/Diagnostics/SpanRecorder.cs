using System.Collections.Concurrent;
using System.Diagnostics;

namespace MessageQueue.Tests.Diagnostics;

/// <summary>Records the stopped spans (all data) of the <c>MessageQueue</c> source and of a test's own source. The
/// listener is process-wide; tests in this assembly run one at a time, so it sees only the running test's brokers.</summary>
internal sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _stopped = new();

    public SpanRecorder(string testSource)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "MessageQueue" || s.Name == testSource,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public Activity Single(string name) => All(name).Single();

    public List<Activity> All(string name) => [.. _stopped.Where(a => a.DisplayName == name).OrderBy(a => a.StartTimeUtc)];

    public void Dispose() => _listener.Dispose();
}
