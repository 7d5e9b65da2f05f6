namespace MessageQueue.Scheduling;

/// <summary>
/// Publish timestamps. Reading the wall clock costs about 25 ns on Linux, a large share of an in-memory
/// publish, so with the system clock the broker extrapolates from a base re-read every second with
/// <see cref="Environment.TickCount64"/> (about 5 ns; millisecond resolution, like AMQP's second-resolution
/// timestamps or better). Any other <see cref="TimeProvider"/> (a test's manual clock) is read every time.
/// </summary>
internal sealed class BrokerClock(TimeProvider time)
{
    private const long ResyncMilliseconds = 1000;

    private readonly bool _system = ReferenceEquals(time, TimeProvider.System);
    private Base _base = new(time.GetUtcNow().UtcTicks, Environment.TickCount64);

    internal TimeProvider Time { get; } = time;

    /// <summary>The current UTC time in ticks, cheaply.</summary>
    internal long UtcNowTicks()
    {
        if (!_system)
        {
            return Time.GetUtcNow().UtcTicks;
        }

        var ms = Environment.TickCount64;
        var b = Volatile.Read(ref _base);
        var elapsed = ms - b.Milliseconds;
        if (elapsed is >= 0 and < ResyncMilliseconds)
        {
            return b.Ticks + (elapsed * TimeSpan.TicksPerMillisecond);
        }

        var fresh = new Base(Time.GetUtcNow().UtcTicks, ms);
        Volatile.Write(ref _base, fresh);
        return fresh.Ticks;
    }

    private sealed record Base(long Ticks, long Milliseconds);
}
