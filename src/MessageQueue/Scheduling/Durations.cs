namespace MessageQueue.Scheduling;

/// <summary>
/// Arithmetic on durations that the system timer cannot hold. A <see cref="TimeProvider"/> timer takes at most
/// about 49.7 days, and <c>now + TimeSpan.MaxValue</c> wraps, so every due time the broker computes goes through
/// here: additions saturate, "never" (<see cref="TimeSpan.MaxValue"/>, <see cref="Timeout.InfiniteTimeSpan"/>) is
/// recognised where an option allows it, and long waits are taken in steps toward an absolute deadline.
/// </summary>
internal static class Durations
{
    /// <summary>The longest single timer wait the broker arms; longer waits re-arm (a wake-up finds nothing due and
    /// arms the next step).</summary>
    internal static readonly TimeSpan MaxTimerStep = TimeSpan.FromDays(1);

    /// <summary>The last representable instant, in UTC ticks: a due time that saturates here never comes.</summary>
    internal static readonly long Never = DateTimeOffset.MaxValue.UtcTicks;

    /// <summary>Whether <paramref name="value"/> means "never" (<see cref="TimeSpan.MaxValue"/> or <see cref="Timeout.InfiniteTimeSpan"/>).</summary>
    internal static bool IsInfinite(TimeSpan value) => value == TimeSpan.MaxValue || value == Timeout.InfiniteTimeSpan;

    /// <summary><paramref name="ticks"/> + <paramref name="add"/>, saturating at <see cref="Never"/> instead of wrapping.</summary>
    internal static long After(long ticks, long add)
    {
        if (add <= 0)
        {
            return ticks;
        }

        return ticks > Never - add ? Never : ticks + add;
    }

    /// <summary><paramref name="ticks"/> + <paramref name="delay"/>, saturating; "never" for an infinite delay.</summary>
    internal static long After(long ticks, TimeSpan delay) => IsInfinite(delay) ? Never : After(ticks, delay.Ticks);

    /// <summary>The timer wait for a due time: at most <see cref="MaxTimerStep"/>, never negative.</summary>
    internal static TimeSpan TimerWait(long dueTicks, long nowTicks)
    {
        var wait = dueTicks - nowTicks;
        return wait <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(wait, MaxTimerStep.Ticks));
    }

    /// <summary>Waits <paramref name="delay"/> on <paramref name="time"/>, however long: in steps of at most
    /// <see cref="MaxTimerStep"/> toward an absolute deadline, so a clock that jumps ends the wait on time.</summary>
    internal static async Task DelayAsync(TimeSpan delay, TimeProvider time, CancellationToken cancellationToken)
    {
        var deadline = After(time.GetUtcNow().UtcTicks, delay);
        while (true)
        {
            var wait = TimerWait(deadline, time.GetUtcNow().UtcTicks);
            if (wait <= TimeSpan.Zero)
            {
                return;
            }

            await Task.Delay(wait, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A timeout for <see cref="Task.WaitAsync(TimeSpan, TimeProvider)"/>: values it cannot take mean "no timeout".</summary>
    internal static TimeSpan ForWait(TimeSpan timeout) =>
        IsInfinite(timeout) || timeout.TotalMilliseconds >= uint.MaxValue - 1 ? Timeout.InfiniteTimeSpan : timeout;
}
