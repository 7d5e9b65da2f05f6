using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>
/// A queue's deduplication window (RabbitMQ's message deduplication plugin, per queue): the message ids it remembers,
/// oldest first, for <see cref="QueueOptions.DeduplicationWindow"/> and at most
/// <see cref="QueueOptions.DeduplicationCapacity"/> of them; the ids of publishes whose rows are still being written
/// (a publish of the same id waits for their outcome); and, for a durable queue, the same ids in the store.
/// </summary>
/// <remarks>Owns all of that state. Not thread-safe: every member is called under the owning queue's lock.</remarks>
internal sealed class DeduplicationWindow
{
    private readonly string _queue;
    private readonly long _windowTicks;
    private readonly int _capacity;
    private readonly DurableLog? _store; // set when the window survives a restart (a durable queue)
    private readonly Dictionary<string, long> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Id, long At)> _order = new();
    private Dictionary<string, int>? _pending;
    private TaskCompletionSource? _pendingSignal;

    private DeduplicationWindow(string queue, long windowTicks, int capacity, DurableLog? store)
    {
        _queue = queue;
        _windowTicks = windowTicks;
        _capacity = capacity;
        _store = store;
    }

    /// <summary>The queue's window, or null when it does not deduplicate. <paramref name="store"/> is the log that
    /// keeps the ids of a durable queue (null for a queue whose ids live only in memory).</summary>
    internal static DeduplicationWindow? For(string queue, QueueOptions options, DurableLog? store) =>
        options.DeduplicationWindow is not { } window
            ? null
            : new(queue, Durations.IsInfinite(window) ? long.MaxValue : window.Ticks, options.DeduplicationCapacity, store);

    /// <summary>How many ids it remembers.</summary>
    internal int Count => _seen.Count;

    /// <summary>Whether the ids are kept in the store, to survive a restart.</summary>
    internal bool IsDurable => _store is not null;

    internal bool Contains(string id) => _seen.ContainsKey(id);

    /// <summary>Whether a publish of <paramref name="id"/> is being written; <see cref="PendingOutcome"/> completes when
    /// any such write ends.</summary>
    internal bool IsPending(string id) => _pending?.ContainsKey(id) == true;

    internal Task PendingOutcome() =>
        (_pendingSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>Forgets the ids seen a window or longer before <paramref name="now"/>.</summary>
    internal void ForgetExpired(long now)
    {
        while (_order.TryPeek(out var oldest) && now - oldest.At >= _windowTicks)
        {
            ForgetOldest();
        }
    }

    /// <summary>Remembers <paramref name="id"/> as seen at <paramref name="at"/> (in the store too when
    /// <paramref name="store"/>: the row's write did not already remember it). Over capacity, the oldest id is
    /// forgotten early.</summary>
    internal void Remember(string id, long at, bool store)
    {
        if (_order.Count >= _capacity)
        {
            ForgetOldest();
        }

        if (_seen.TryAdd(id, at))
        {
            _order.Enqueue((id, at));
            if (store)
            {
                _store?.Remember(new RememberedId(_queue, id, at));
            }
        }
    }

    /// <summary>A publish of <paramref name="id"/> is being written.</summary>
    internal void Hold(string id)
    {
        var pending = _pending ??= new(StringComparer.Ordinal);
        pending[id] = pending.GetValueOrDefault(id) + 1;
    }

    /// <summary>A write held by <see cref="Hold"/> ended (written or failed): publishes of the same id waiting for its
    /// outcome plan again.</summary>
    internal void Release(string id)
    {
        if (_pending is not { } pending || !pending.TryGetValue(id, out var n))
        {
            return;
        }

        if (n <= 1)
        {
            pending.Remove(id);
        }
        else
        {
            pending[id] = n - 1;
        }

        var signal = _pendingSignal;
        _pendingSignal = null;
        signal?.TrySetResult();
    }

    /// <summary>Takes back the ids an earlier run remembered (oldest first); those whose window has passed, or all
    /// when the window is not durable, are forgotten in <paramref name="log"/>.</summary>
    internal static void Restore(DeduplicationWindow? window, IEnumerable<RememberedId> ids, long now, DurableLog log)
    {
        foreach (var r in ids.OrderBy(r => r.SeenTicks))
        {
            if (window is { IsDurable: true } && now - r.SeenTicks < window._windowTicks)
            {
                window.Remember(r.MessageId, r.SeenTicks, store: false);
            }
            else
            {
                log.Forget(r);
            }
        }
    }

    private void ForgetOldest()
    {
        var (id, at) = _order.Dequeue();
        _seen.Remove(id);
        _store?.Forget(new RememberedId(_queue, id, at));
    }
}
