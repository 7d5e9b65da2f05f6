namespace MessageQueue.Tests.Support;

/// <summary>A clock that moves only when the test says so. Timers fire inside <see cref="Advance"/>, in due order.</summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private const double MaxTimerMilliseconds = 0xFFFFFFFE;
    private readonly Lock _sync = new();
    private readonly List<ManualTimer> _timers = [];
    private readonly List<(int Count, TaskCompletionSource Done)> _armWaiters = [];
    private DateTimeOffset _now;

    public ManualTimeProvider() : this(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)) { }

    public ManualTimeProvider(DateTimeOffset start) => _now = start;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_sync)
        {
            return _now;
        }
    }

    public override long GetTimestamp() => GetUtcNow().UtcTicks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public int ActiveTimers
    {
        get
        {
            lock (_sync)
            {
                return _timers.Count(t => t.Due is not null);
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
            if (_timers.Count(t => t.Due is not null) >= count)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _armWaiters.Add((count, done));
            return done.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    private void OnArmed()
    {
        var armed = _timers.Count(t => t.Due is not null);
        for (var i = _armWaiters.Count - 1; i >= 0; i--)
        {
            if (armed >= _armWaiters[i].Count)
            {
                _armWaiters[i].Done.TrySetResult();
                _armWaiters.RemoveAt(i);
            }
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_sync)
        {
            _timers.Add(timer);
        }

        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock forward, firing every timer that falls due on the way, in order.</summary>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        DateTimeOffset target;
        lock (_sync)
        {
            target = _now + by;
        }

        while (true)
        {
            ManualTimer? next;
            lock (_sync)
            {
                next = _timers.Where(t => t.Due is { } d && d <= target).OrderBy(t => t.Due).FirstOrDefault();
                if (next is null)
                {
                    _now = target;
                    return;
                }

                if (next.Due > _now)
                {
                    _now = next.Due!.Value;
                }

                next.Due = next.Period is { } p && p > TimeSpan.Zero ? _now + p : null;
            }

            next.Fire();
        }
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        internal DateTimeOffset? Due { get; set; }

        internal TimeSpan? Period { get; private set; }

        internal void Fire() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            // As System.Threading.Timer: at most 0xFFFFFFFE ms, or infinite (so code that arms longer waits fails here too).
            Check(dueTime, nameof(dueTime));
            Check(period, nameof(period));
            lock (owner._sync)
            {
                Due = dueTime == Timeout.InfiniteTimeSpan ? null : owner._now + dueTime;
                Period = period == Timeout.InfiniteTimeSpan ? null : period;
                owner.OnArmed();
            }

            return true;
        }

        private static void Check(TimeSpan value, string name)
        {
            if (value != Timeout.InfiniteTimeSpan && (value < TimeSpan.Zero || value.TotalMilliseconds > MaxTimerMilliseconds))
            {
                throw new ArgumentOutOfRangeException(name, value, "A timer takes at most 0xFFFFFFFE milliseconds (about 49.7 days).");
            }
        }

        public void Dispose()
        {
            lock (owner._sync)
            {
                Due = null;
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
