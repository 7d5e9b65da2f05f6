using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Deduplication windows: the ids a queue remembers, for how long, and in the store for a durable queue.</summary>
internal sealed partial class BrokerQueue
{
    /// <summary>How many ids the deduplication window holds (for tests of its bound).</summary>
    internal int RememberedIds
    {
        get
        {
            lock (_sync)
            {
                return _seen?.Count ?? 0;
            }
        }
    }

    private void ForgetOldIds(long now)
    {
        var order = _seenOrder!;
        while (order.TryPeek(out var oldest) && now - oldest.At >= _dedupWindowTicks)
        {
            ForgetOldest();
        }
    }

    private void ForgetOldest()
    {
        var (id, at) = _seenOrder!.Dequeue();
        _seen!.Remove(id);
        if (RemembersDurably)
        {
            _context.Durable!.Forget(new RememberedId(Name, id, at));
        }
    }

    /// <summary>Whether the deduplication window is kept in the store, to survive a restart (a durable queue).</summary>
    internal bool RemembersDurably => _stored && Options.Durable;

    private void RememberId(string id, long at, bool store)
    {
        if (_seenOrder!.Count >= Options.DeduplicationCapacity)
        {
            ForgetOldest(); // over capacity: the oldest id is forgotten early
        }

        if (_seen!.TryAdd(id, at))
        {
            _seenOrder.Enqueue((id, at));
            if (store && RemembersDurably)
            {
                _context.Durable!.Remember(new RememberedId(Name, id, at));
            }
        }
    }

    /// <summary>Takes back the ids an earlier run remembered (oldest first); those whose window has passed, or
    /// all when the queue no longer deduplicates durably, are forgotten in the store too.</summary>
    internal void RestoreRememberedIds(IEnumerable<RememberedId> ids)
    {
        lock (_sync)
        {
            var now = _context.Clock.UtcNowTicks();
            foreach (var r in ids.OrderBy(r => r.SeenTicks))
            {
                if (_dedupWindowTicks > 0 && RemembersDurably && now - r.SeenTicks < _dedupWindowTicks)
                {
                    RememberId(r.MessageId, r.SeenTicks, store: false);
                }
                else
                {
                    _context.Durable!.Forget(r);
                }
            }
        }
    }
}
