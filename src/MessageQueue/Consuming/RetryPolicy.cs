namespace MessageQueue;

/// <summary>
/// How many times a failed message is tried again, and how long it waits in the queue before each new
/// try. The wait happens in the queue as a delayed redelivery; no worker is held while it waits.
/// </summary>
/// <remarks>
/// <para>Policies are values: two policies are equal when they are of the same kind with the same parameters and
/// exception filters (<c>Exponential(3, 1s, 10s)</c> built twice is one policy), so a queue redeclared with a new but
/// equal policy is the same queue.</para>
/// <para>Exception filters tell a permanent error from a transient one: <see cref="Handle{TException}"/> retries only
/// the exceptions named (and those derived from them), <see cref="DeadLetterOn{TException}"/> never retries the ones
/// named: the first such failure dead-letters the message, with the exception in its <c>x-exception-*</c> headers.
/// <c>DeadLetterOn</c> wins over <c>Handle</c>. Filters apply where a handler's exception is known (subscriptions and
/// DI handlers); a nack has no exception, so a queue's <see cref="QueueOptions.Redelivery"/> ignores them.</para>
/// </remarks>
public sealed class RetryPolicy : IEquatable<RetryPolicy>
{
    private readonly Kind _kind;
    private readonly TimeSpan[] _intervals;
    private readonly TimeSpan _minInterval;
    private readonly TimeSpan _maxInterval;
    private readonly Type[] _handled;
    private readonly Type[] _deadLettered;

    private RetryPolicy(Kind kind, int maxRetries, TimeSpan[] intervals, TimeSpan minInterval, TimeSpan maxInterval, Type[]? handled = null, Type[]? deadLettered = null)
    {
        _kind = kind;
        MaxRetries = maxRetries;
        _intervals = intervals;
        _minInterval = minInterval;
        _maxInterval = maxInterval;
        _handled = handled ?? [];
        _deadLettered = deadLettered ?? [];
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

    /// <summary>Gets the exception types this policy retries (with those derived from them); empty when it retries every
    /// exception not in <see cref="DeadLetteredExceptions"/>.</summary>
    public IReadOnlyList<Type> HandledExceptions => _handled;

    /// <summary>Gets the exception types this policy never retries (with those derived from them).</summary>
    public IReadOnlyList<Type> DeadLetteredExceptions => _deadLettered;

    /// <summary>A policy like this one that retries only <typeparamref name="TException"/> and the exceptions derived
    /// from it (plus any other type already given to <c>Handle</c>); any other exception dead-letters at once.</summary>
    /// <typeparam name="TException">A transient error, worth a retry.</typeparam>
    /// <returns>The new policy (this one is unchanged).</returns>
    public RetryPolicy Handle<TException>()
        where TException : Exception => Handle(typeof(TException));

    /// <summary>A policy like this one that retries only exceptions of <paramref name="exceptionType"/> (and derived
    /// types), plus any other type already given to <c>Handle</c>.</summary>
    /// <param name="exceptionType">An exception type.</param>
    /// <returns>The new policy (this one is unchanged).</returns>
    /// <exception cref="ArgumentException"><paramref name="exceptionType"/> is not an exception type.</exception>
    public RetryPolicy Handle(Type exceptionType) =>
        new(_kind, MaxRetries, _intervals, _minInterval, _maxInterval, With(_handled, exceptionType), _deadLettered);

    /// <summary>A policy like this one that never retries <typeparamref name="TException"/> or the exceptions derived
    /// from it: a permanent error (a declined card, a validation error) dead-letters at its first failure.</summary>
    /// <typeparam name="TException">A permanent error.</typeparam>
    /// <returns>The new policy (this one is unchanged).</returns>
    public RetryPolicy DeadLetterOn<TException>()
        where TException : Exception => DeadLetterOn(typeof(TException));

    /// <summary>A policy like this one that never retries exceptions of <paramref name="exceptionType"/> (and derived
    /// types).</summary>
    /// <param name="exceptionType">An exception type.</param>
    /// <returns>The new policy (this one is unchanged).</returns>
    /// <exception cref="ArgumentException"><paramref name="exceptionType"/> is not an exception type.</exception>
    public RetryPolicy DeadLetterOn(Type exceptionType) =>
        new(_kind, MaxRetries, _intervals, _minInterval, _maxInterval, _handled, With(_deadLettered, exceptionType));

    /// <summary>Whether <paramref name="exception"/> may be retried by this policy's filters (retries left are counted
    /// separately, by <see cref="MaxRetries"/>): not of a type given to <c>DeadLetterOn</c>, and, when types were given
    /// to <c>Handle</c>, of one of them. The exception itself is matched (with derived types), not its inner
    /// exceptions: a <see cref="TaskCanceledException"/> wrapping a <see cref="TimeoutException"/> is a
    /// <see cref="TaskCanceledException"/>.</summary>
    /// <param name="exception">The handler's exception.</param>
    /// <returns>Whether to retry it.</returns>
    public bool ShouldRetry(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (Matches(_deadLettered, exception))
        {
            return false;
        }

        return _handled.Length == 0 || Matches(_handled, exception);
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
                && _maxInterval == other._maxInterval && _intervals.AsSpan().SequenceEqual(other._intervals)
                && _handled.AsSpan().SequenceEqual(other._handled) && _deadLettered.AsSpan().SequenceEqual(other._deadLettered)));

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

        foreach (var type in _handled)
        {
            hash.Add(type);
        }

        foreach (var type in _deadLettered)
        {
            hash.Add(type);
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
    public override string ToString()
    {
        var text = _kind switch
        {
            Kind.Immediate => $"Immediate({MaxRetries})",
            Kind.Intervals => $"Intervals({string.Join(", ", _intervals)})",
            Kind.Exponential => $"Exponential({MaxRetries}, {_minInterval}, {_maxInterval})",
            _ => "None",
        };
        foreach (var type in _handled)
        {
            text += $".Handle<{type.Name}>()";
        }

        foreach (var type in _deadLettered)
        {
            text += $".DeadLetterOn<{type.Name}>()";
        }

        return text;
    }

    /// <summary>The types with <paramref name="type"/> added, kept sorted by full name (so the order of the calls does
    /// not change the policy's equality) and without repeats.</summary>
    private static Type[] With(Type[] types, Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        if (!typeof(Exception).IsAssignableFrom(type))
        {
            throw new ArgumentException($"'{type.FullName}' is not an exception type; retry filters take types derived from System.Exception.", nameof(type));
        }

        return types.Contains(type) ? types : [.. types.Append(type).OrderBy(t => t.FullName, StringComparer.Ordinal).ThenBy(t => t.AssemblyQualifiedName, StringComparer.Ordinal)];
    }

    private static bool Matches(Type[] types, Exception exception)
    {
        foreach (var type in types)
        {
            if (type.IsInstanceOfType(exception))
            {
                return true;
            }
        }

        return false;
    }

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
