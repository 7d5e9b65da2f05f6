namespace MessageQueue;

/// <summary>
/// How many times a failed message is tried again, and how long it waits in the queue before each new
/// try. The wait happens in the queue as a delayed redelivery; no worker is held while it waits.
/// </summary>
/// <remarks>
/// Policies are values: two policies are equal when they are of the same kind with the same parameters
/// (<c>Exponential(3, 1s, 10s)</c> built twice is one policy), so a queue redeclared with a new but equal
/// policy is the same queue.
/// </remarks>
public sealed class RetryPolicy : IEquatable<RetryPolicy>
{
    private readonly Kind _kind;
    private readonly TimeSpan[] _intervals;
    private readonly TimeSpan _minInterval;
    private readonly TimeSpan _maxInterval;

    private RetryPolicy(Kind kind, int maxRetries, TimeSpan[] intervals, TimeSpan minInterval, TimeSpan maxInterval)
    {
        _kind = kind;
        MaxRetries = maxRetries;
        _intervals = intervals;
        _minInterval = minInterval;
        _maxInterval = maxInterval;
    }

    private enum Kind
    {
        None,
        Immediate,
        Intervals,
        Exponential,
    }

    /// <summary>Gets a policy that never retries: the first failure dead-letters the message.</summary>
    public static RetryPolicy None { get; } = new(Kind.None, 0, [], TimeSpan.Zero, TimeSpan.Zero);

    /// <summary>Gets how many times a message is retried after its first failure.</summary>
    public int MaxRetries { get; }

    /// <summary>Retries up to <paramref name="retryLimit"/> times at once.</summary>
    /// <param name="retryLimit">How many retries after the first failure (0 or more).</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Immediate(int retryLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retryLimit);
        return new RetryPolicy(Kind.Immediate, retryLimit, [], TimeSpan.Zero, TimeSpan.Zero);
    }

    /// <summary>Retries once per interval, waiting that interval before each retry.</summary>
    /// <param name="intervals">The waits before the first, second, ... retry. None may be negative; any length is
    /// accepted, up to <see cref="TimeSpan.MaxValue"/> (a wait that ends past the end of time never ends).</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Intervals(params TimeSpan[] intervals)
    {
        ArgumentNullException.ThrowIfNull(intervals);
        foreach (var interval in intervals)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero, nameof(intervals));
        }

        var copy = (TimeSpan[])intervals.Clone();
        return new RetryPolicy(Kind.Intervals, copy.Length, copy, TimeSpan.Zero, TimeSpan.Zero);
    }

    /// <summary>Retries up to <paramref name="retryLimit"/> times, doubling the wait each time from
    /// <paramref name="minInterval"/> up to <paramref name="maxInterval"/> (the doubling stops there, whatever the
    /// retry number, up to <see cref="TimeSpan.MaxValue"/>).</summary>
    /// <param name="retryLimit">How many retries after the first failure.</param>
    /// <param name="minInterval">The wait before the first retry.</param>
    /// <param name="maxInterval">The longest wait.</param>
    /// <returns>The policy.</returns>
    public static RetryPolicy Exponential(int retryLimit, TimeSpan minInterval, TimeSpan maxInterval)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retryLimit);
        ArgumentOutOfRangeException.ThrowIfLessThan(minInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInterval, minInterval);
        return new RetryPolicy(Kind.Exponential, retryLimit, [], minInterval, maxInterval);
    }

    /// <summary>Gets the wait before retry number <paramref name="retryAttempt"/> (1 for the first retry).
    /// Past <see cref="MaxRetries"/>, the last wait is repeated.</summary>
    /// <param name="retryAttempt">The retry number, 1 or more.</param>
    /// <returns>The wait.</returns>
    public TimeSpan GetDelay(int retryAttempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retryAttempt, 1);
        if (MaxRetries == 0)
        {
            return TimeSpan.Zero;
        }

        var attempt = Math.Min(retryAttempt, MaxRetries);
        return _kind switch
        {
            Kind.Intervals => _intervals[attempt - 1],
            Kind.Exponential => Doubled(_minInterval, attempt - 1, _maxInterval),
            _ => TimeSpan.Zero,
        };
    }

    /// <summary>Whether <paramref name="other"/> is of the same kind with the same parameters.</summary>
    /// <param name="other">The other policy.</param>
    /// <returns>Whether the two are equal.</returns>
    public bool Equals(RetryPolicy? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (_kind == other._kind && MaxRetries == other.MaxRetries && _minInterval == other._minInterval
                && _maxInterval == other._maxInterval && _intervals.AsSpan().SequenceEqual(other._intervals)));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as RetryPolicy);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(_kind);
        hash.Add(MaxRetries);
        hash.Add(_minInterval);
        hash.Add(_maxInterval);
        foreach (var interval in _intervals)
        {
            hash.Add(interval);
        }

        return hash.ToHashCode();
    }

    /// <summary>Whether two policies are equal (see <see cref="Equals(RetryPolicy)"/>).</summary>
    /// <param name="left">A policy, or null.</param>
    /// <param name="right">Another policy, or null.</param>
    /// <returns>Whether both are null, or equal.</returns>
    public static bool operator ==(RetryPolicy? left, RetryPolicy? right) => left is null ? right is null : left.Equals(right);

    /// <summary>Whether two policies differ (see <see cref="Equals(RetryPolicy)"/>).</summary>
    /// <param name="left">A policy, or null.</param>
    /// <param name="right">Another policy, or null.</param>
    /// <returns>Whether they are not equal.</returns>
    public static bool operator !=(RetryPolicy? left, RetryPolicy? right) => !(left == right);

    /// <inheritdoc/>
    public override string ToString() => _kind switch
    {
        Kind.Immediate => $"Immediate({MaxRetries})",
        Kind.Intervals => $"Intervals({string.Join(", ", _intervals)})",
        Kind.Exponential => $"Exponential({MaxRetries}, {_minInterval}, {_maxInterval})",
        _ => "None",
    };

    /// <summary><paramref name="min"/> doubled <paramref name="doublings"/> times, in exact tick arithmetic, and at
    /// most <paramref name="max"/>: the doubling saturates at the max instead of overflowing.</summary>
    private static TimeSpan Doubled(TimeSpan min, int doublings, TimeSpan max)
    {
        if (min == TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        // min << doublings <= max exactly when min <= max >> doublings; a shift of 63 or more exceeds any tick count.
        return doublings < 63 && min.Ticks <= max.Ticks >> doublings
            ? TimeSpan.FromTicks(min.Ticks << doublings)
            : max;
    }
}
