using Microsoft.Extensions.Logging;

namespace MessageQueue.Scheduling;

/// <summary>
/// The broker's one timer, driven by <see cref="TimeProvider"/>. Queues register the earliest time they
/// need waking (a delayed message, a delayed redelivery, an ack deadline); each queue keeps its own
/// delayed messages in a heap, so 100,000 delayed messages cost one registration, not 100,000 timers.
/// The timer is armed for at most <see cref="Durations.MaxTimerStep"/> at a time (a wake-up that finds nothing due
/// re-arms), so due times of any distance work, and its callback never throws: a target that fails is logged.
/// </summary>
internal sealed partial class Scheduler : IDisposable
{
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ITimer _timer;
    private readonly Lock _sync = new();
    private readonly PriorityQueue<IDueTarget, long> _heap = new();
    private long _armedFor = long.MaxValue;
    private bool _disposed;

    internal Scheduler(TimeProvider time, ILogger logger)
    {
        _time = time;
        _logger = logger;
        _timer = time.CreateTimer(static s => ((Scheduler)s!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    internal long NowTicks => _time.GetUtcNow().UtcTicks;

    /// <summary>How many wake-ups are registered (for tests: bounded by queues, not messages).</summary>
    internal int Registrations
    {
        get
        {
            lock (_sync)
            {
                return _heap.Count;
            }
        }
    }

    /// <summary>Asks for <paramref name="target"/> to be woken at <paramref name="dueTicks"/> (UTC ticks).</summary>
    internal void Schedule(IDueTarget target, long dueTicks)
    {
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            _heap.Enqueue(target, dueTicks);
            if (dueTicks < _armedFor)
            {
                Arm(dueTicks);
            }
        }
    }

    private void Arm(long dueTicks)
    {
        _armedFor = dueTicks;
        _timer.Change(Durations.TimerWait(dueTicks, NowTicks), Timeout.InfiniteTimeSpan);
    }

    private void Fire()
    {
        List<IDueTarget>? due = null;
        long now;
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            now = NowTicks;
            while (_heap.TryPeek(out var target, out var at) && at <= now)
            {
                _heap.Dequeue();
                (due ??= []).Add(target);
            }

            _armedFor = long.MaxValue;
            if (_heap.TryPeek(out _, out var next))
            {
                Arm(next);
            }
        }

        if (due is null)
        {
            return;
        }

        foreach (var target in due.Distinct())
        {
            try
            {
                target.OnDue(now);
            }
#pragma warning disable CA1031 // A timer callback must never throw: it would end the process.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogDueFailed(_logger, target, ex);
            }
        }
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _disposed = true;
            _heap.Clear();
        }

        _timer.Dispose();
    }

    [LoggerMessage(EventId = 30, EventName = "ScheduledWakeUpFailed", Level = LogLevel.Error, Message = "A scheduled wake-up of {Target} failed")]
    private static partial void LogDueFailed(ILogger logger, IDueTarget target, Exception exception);
}
