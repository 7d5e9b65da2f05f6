using MessageQueue.Queues;

namespace MessageQueue;

/// <summary>
/// Exact in-flight tracking: whether the broker has any work left, and an awaitable that completes exactly when it
/// has none (never from an inactivity timer). Work is: ready messages (in memory or on a lazy queue's disk), delayed
/// messages that are due, unacked deliveries (in prefetch windows or in code), handlers running, dead letters between
/// their queue and their targets, and store units (publishes, dead-letter moves, redrives) submitted but not yet in
/// their queues. Not work: delayed messages not yet due (a test clock moves them on), and acks waiting for
/// <see cref="StorageOptions.AckDelay"/> (they change nothing a consumer or publisher can see).
/// </summary>
/// <remarks>
/// The check takes every queue's lock (in id order, as admission does) and reads the in-between states while holding
/// them. Every move of a message between places is covered by an in-between state until the message is in its target
/// (a dead letter is counted by its source queue until sent; a store unit by the log until applied; a publish being
/// admitted or a redrive by an operation count; a handler is running until it returned and settled). Arrivals through
/// the lock-free publish path are not held back by the locks, so each one, while a check runs, bumps a count the
/// check compares before and after: a check that sees no work and no arrival saw a moment with none. Every change
/// that can end work (a settle, a send, a handler returning, a unit applied, an operation ending, a queue deleted)
/// signals the waiters, which then check again.
/// </remarks>
internal sealed class InFlight(BrokerContext context)
{
    private int _watchers;
    private int _operations;
    private long _arrivals;
    private TaskCompletionSource _changed = NewSignal();

    /// <summary>An operation that moves messages outside any queue's state starts (a publish being admitted, which may
    /// wait for room in a Block queue; a redrive): work until <see cref="EndOperation"/>.</summary>
    internal void BeginOperation() => Interlocked.Increment(ref _operations);

    /// <summary>The operation's messages are where it put them (or it failed).</summary>
    internal void EndOperation()
    {
        Interlocked.Decrement(ref _operations);
        Signal();
    }

    /// <summary>Handler runners (subscriptions), to ask whether a handler is running.</summary>
    internal Func<IEnumerable<IRunsHandlers>>? Runners { get; set; }

    /// <summary>A message entered a queue without its lock (the lock-free publish path), after a full fence: a check
    /// running meanwhile cannot trust its snapshot and looks again (cheap when nobody checks).</summary>
    internal void Arrived()
    {
        if (Volatile.Read(ref _watchers) > 0)
        {
            Interlocked.Increment(ref _arrivals);
        }
    }

    /// <summary>Wakes the waiters to check again (cheap when nobody waits).</summary>
    internal void Signal()
    {
        if (Volatile.Read(ref _watchers) > 0)
        {
            Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();
        }
    }

    /// <summary>Completes when the broker has no work left (see the class summary). With
    /// <paramref name="readyNeedsConsumer"/>, ready messages count only in queues that have a consumer: messages left
    /// in a queue nobody consumes (a dead-letter queue a test inspects) cannot make progress, so they are not work.</summary>
#pragma warning disable CA1068 // the token stays first, as in every other wait of the broker; the flag is rarely given
    internal async Task WhenIdleAsync(CancellationToken cancellationToken, bool readyNeedsConsumer = false)
#pragma warning restore CA1068
    {
        Interlocked.Increment(ref _watchers);
        try
        {
            while (true)
            {
                var changed = Volatile.Read(ref _changed).Task; // taken before the check: a change after it completes it
                if (Busy(readyNeedsConsumer) is null)
                {
                    return;
                }

                await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _watchers);
        }
    }

    /// <summary>Whether there is no work, at one moment (every queue's lock held at once).</summary>
    internal bool IsIdle() => Busy() is null;

    /// <summary>What is still in flight (the first thing found), or null when nothing is: for error messages.</summary>
    internal string? Busy(bool readyNeedsConsumer = false)
    {
        // Registered while checking, so lock-free arrivals count (see Arrived); they are not blocked by the locks below.
        Interlocked.Increment(ref _watchers);
        try
        {
            var arrivals = Volatile.Read(ref _arrivals);
            var busy = BusyUnderLocks(readyNeedsConsumer);
            return busy ?? (Volatile.Read(ref _arrivals) != arrivals ? "messages arrived during the check" : null);
        }
        finally
        {
            Interlocked.Decrement(ref _watchers);
        }
    }

    private string? BusyUnderLocks(bool readyNeedsConsumer)
    {
        var queues = context.Topology.Queues.OrderBy(q => q.Id).ToArray();
        var entered = 0;
        try
        {
            foreach (var queue in queues)
            {
                queue.Sync.Enter();
                entered++;
            }

            var now = context.Scheduler.NowTicks;
            foreach (var queue in queues)
            {
                if (queue.BusyLocked(now, readyNeedsConsumer) is { } busy)
                {
                    return $"queue '{queue.Name}': {busy}";
                }
            }

            if (Volatile.Read(ref _operations) > 0)
            {
                return "publishes being admitted or messages being redriven";
            }

            if (context.Durable is { HasUnappliedUnits: true })
            {
                return "store units written or being written, not yet in their queues";
            }

            return Runners?.Invoke().FirstOrDefault(r => r.HandlersRunning) is { } runner ? $"a handler of {runner} is running" : null;
        }
        finally
        {
            for (var i = entered - 1; i >= 0; i--)
            {
                queues[i].Sync.Exit();
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Something that runs handlers on deliveries (a subscription): for <see cref="InFlight"/>.</summary>
internal interface IRunsHandlers
{
    /// <summary>Whether a handler is running now (from its call until its delivery was settled).</summary>
    bool HandlersRunning { get; }
}
