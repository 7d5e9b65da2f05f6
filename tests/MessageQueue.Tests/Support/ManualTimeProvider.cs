using Microsoft.Extensions.Time.Testing;

namespace MessageQueue.Tests.Support;

/// <summary>
/// The suite's clock: <see cref="FakeTimeProvider"/> (the clock the testing package gives users, so the suite runs on
/// the same one), plus what some tests need on top of it: how many timers are armed, and a signal when code under test
/// arms one on its own thread (a retry's wait, an ack timeout), so a test advances time only once the timer exists.
/// </summary>
public sealed class ManualTimeProvider : FakeTimeProvider
{
    private readonly Lock _sync = new();
    private readonly List<TrackedTimer> _timers = [];
    private readonly List<(int Count, TaskCompletionSource Done)> _armWaiters = [];

    public ManualTimeProvider() : base(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)) { }

    public ManualTimeProvider(DateTimeOffset start) : base(start) { }

    /// <summary>Gets how many timers are armed (will fire if time moves far enough).</summary>
    public int ActiveTimers
    {
        get
        {
            lock (_sync)
            {
                return _timers.Count(t => t.Armed);
            }
        }
    }

    /// <summary>Gets how many timers were created and are not disposed yet (armed or not).</summary>
    public int Timers
    {
        get
        {
            lock (_sync)
            {
                return _timers.Count;
            }
        }
    }

    /// <summary>Completes when at least <paramref name="count"/> timers are armed (code under test arms them on
    /// its own threads, e.g. a retry's wait); signalled by the timers themselves, never polled.</summary>
    public Task WaitForArmedTimersAsync(int count)
    {
        lock (_sync)
        {
            if (_timers.Count(t => t.Armed) >= count)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _armWaiters.Add((count, done));
            return done.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new TrackedTimer(this);
        timer.Inner = base.CreateTimer(
            s =>
            {
                timer.Fired();
                callback(s);
            },
            state,
            Timeout.InfiniteTimeSpan,
            Timeout.InfiniteTimeSpan);
        lock (_sync)
        {
            _timers.Add(timer);
        }

        timer.Change(dueTime, period);
        return timer;
    }

    private void ArmedChanged()
    {
        var armed = _timers.Count(t => t.Armed);
        for (var i = _armWaiters.Count - 1; i >= 0; i--)
        {
            if (armed >= _armWaiters[i].Count)
            {
                _armWaiters[i].Done.TrySetResult();
                _armWaiters.RemoveAt(i);
            }
        }
    }

    /// <summary>The fake clock's timer, with whether it is armed: a one-shot is disarmed once it fired.</summary>
    private sealed class TrackedTimer(ManualTimeProvider owner) : ITimer
    {
        private bool _periodic;

        internal ITimer Inner { get; set; } = null!;

        internal bool Armed { get; private set; }

        internal void Fired()
        {
            lock (owner._sync)
            {
                Armed = _periodic;
            }
        }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._sync)
            {
                // The fake timer refuses what System.Threading.Timer refuses (over 0xFFFFFFFE ms), before anything changes.
                var changed = Inner.Change(dueTime, period);
                Armed = dueTime != Timeout.InfiniteTimeSpan;
                _periodic = Armed && period != Timeout.InfiniteTimeSpan && period > TimeSpan.Zero;
                owner.ArmedChanged();
                return changed;
            }
        }

        public void Dispose()
        {
            lock (owner._sync)
            {
                Armed = false;
                owner._timers.Remove(this);
            }

            Inner.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
