namespace MessageQueue;

/// <summary>
/// How many times a failed message is tried again, and how long it waits in the queue before each new
/// try. The wait happens in the queue as a delayed redelivery; no worker is held while it waits.
/// </summary>
public sealed class RetryPolicy
{
    private readonly Func<int, TimeSpan> _delay;

    private RetryPolicy(int maxRetries, Func<int, TimeSpan> delay, string description)
    {
        MaxRetries = maxRetries;
        _delay = delay;
        Description = description;
    }

    /// <summary>Gets a policy that never retries: the first failure dead-letters the message.</summary>
    public static RetryPolicy None { get; } = new(0, static _ => TimeSpan.Zero, "None");

    /// <summary>Gets how many times a message is retried after its first failure.</summary>
    public int MaxRetries { get; }

    private string Description { get; }

    /// <summary>Retries up to <paramref name="retryLimit"/> times at once.</summary>
    /// <param name="retryLimit">How many retries after the first failure (0 or more).</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Immediate(int retryLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retryLimit);
        return new RetryPolicy(retryLimit, static _ => TimeSpan.Zero, $"Immediate({retryLimit})");
    }

    /// <summary>Retries once per interval, waiting that interval before each retry.</summary>
    /// <param name="intervals">The waits before the first, second, ... retry. None may be negative.</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Intervals(params TimeSpan[] intervals)
    {
        ArgumentNullException.ThrowIfNull(intervals);
        foreach (var interval in intervals)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero, nameof(intervals));
        }

        var copy = (TimeSpan[])intervals.Clone();
        return new RetryPolicy(copy.Length, attempt => copy[Math.Min(attempt, copy.Length) - 1],
            $"Intervals({string.Join(", ", copy)})");
    }

    /// <summary>Retries up to <paramref name="retryLimit"/> times, doubling the wait each time from
    /// <paramref name="minInterval"/> up to <paramref name="maxInterval"/>.</summary>
    /// <param name="retryLimit">How many retries after the first failure.</param>
    /// <param name="minInterval">The wait before the first retry.</param>
    /// <param name="maxInterval">The longest wait.</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Exponential(int retryLimit, TimeSpan minInterval, TimeSpan maxInterval)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retryLimit);
        ArgumentOutOfRangeException.ThrowIfLessThan(minInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInterval, minInterval);
        return new RetryPolicy(retryLimit, attempt =>
        {
            var ticks = minInterval.Ticks * Math.Pow(2, attempt - 1);
            return ticks >= maxInterval.Ticks ? maxInterval : TimeSpan.FromTicks((long)ticks);
        }, $"Exponential({retryLimit}, {minInterval}, {maxInterval})");
    }

    /// <summary>Gets the wait before retry number <paramref name="retryAttempt"/> (1 for the first retry).
    /// Past <see cref="MaxRetries"/>, the last wait is repeated.</summary>
    /// <param name="retryAttempt">The retry number, 1 or more.</param>
    /// <returns>The wait.</returns>
    public TimeSpan GetDelay(int retryAttempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retryAttempt, 1);
        return MaxRetries == 0 ? TimeSpan.Zero : _delay(Math.Min(retryAttempt, MaxRetries));
    }

    /// <inheritdoc/>
    public override string ToString() => Description;
}
