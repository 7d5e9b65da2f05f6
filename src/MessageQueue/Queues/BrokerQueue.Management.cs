namespace MessageQueue.Queues;

/// <summary>The management side of a queue: counts, purge, browse, redrive, delete.</summary>
internal sealed partial class BrokerQueue
{
    private int _warnedMissingTarget;

    /// <summary>Logs, once per queue, that its dead letters are dropped because their target does not exist (yet).</summary>
    internal void WarnDeadLetterTargetMissing(string target)
    {
        if (Interlocked.Exchange(ref _warnedMissingTarget, 1) == 0)
        {
            LogDeadLetterTargetMissing(_context.Logger, Name, target);
        }
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 27, Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Queue '{Queue}' names {Target}, which does not exist; its dead letters are dropped (counted in QueueInfo.Dropped) until it is declared")]
    private static partial void LogDeadLetterTargetMissing(Microsoft.Extensions.Logging.ILogger logger, string queue, string target);

    internal QueueInfo GetInfo()
    {
        lock (_sync)
        {
            DrainIncoming();
            var unacked = 0;
            var active = 0;
            foreach (var c in _consumers)
            {
                unacked += c.InFlight;
                active += c.Active ? 1 : 0;
            }

            return new QueueInfo
            {
                Name = Name,
                Ready = ReadyCount,
                Unacked = unacked,
                Delayed = _delayed.Count + (_blockedDue?.Count ?? 0),
                Consumers = active,
                Published = _published,
                Delivered = _delivered,
                Acked = _acked,
                Redelivered = _redelivered,
                DeadLettered = Interlocked.Read(ref _deadLettered),
                Dropped = Interlocked.Read(ref _dropped),
                Expired = _expired,
                Rejected = _rejected,
                Duplicates = _duplicates,
            };
        }
    }

    /// <summary>Removes every ready message (as RabbitMQ's purge: unacked and delayed ones stay).</summary>
    internal int Purge()
    {
        List<QueueEntry> removed;
        int spilled;
        lock (_sync)
        {
            DrainIncoming();
            removed = _ready.Clear();
            _expiries?.Clear();
            foreach (var e in removed)
            {
                e.SetState(EntryState.Gone);
                ForgetStored(e);
            }

            spilled = ClearSpilled();
            if (_limited)
            {
                RoomFreed();
            }
        }

        Notify();
        return removed.Count + spilled;
    }

    /// <summary>The first ready messages in order, left in place (a lazy queue's beyond its window are read from the store).</summary>
    internal List<QueueEntry> Peek(int max)
    {
        List<QueueEntry> seen;
        List<long> spilled;
        lock (_sync)
        {
            DrainIncoming();
            seen = _ready.Snapshot(max);
            spilled = PeekSpilled(max - seen.Count);
        }

        seen.AddRange(ReadSpilled(spilled));
        return seen;
    }

    /// <summary>Takes up to <paramref name="max"/> ready messages that <paramref name="take"/> accepts, in order.</summary>
    internal List<QueueEntry> TakeReady(Func<QueueEntry, bool> take, int max)
    {
        List<QueueEntry> taken;
        lock (_sync)
        {
            DrainIncoming();
            taken = _ready.RemoveWhere(take, max);
            foreach (var e in taken)
            {
                e.SetState(EntryState.Gone);
                ForgetStored(e);
            }

            if (_limited && taken.Count > 0)
            {
                RoomFreed();
            }

            if (_spill is not null)
            {
                MaybeRefill();
            }
        }

        Notify();
        return taken;
    }

    /// <summary>Deletes the queue: its messages are dropped and its consumers' channels completed.</summary>
    internal int Delete()
    {
        lock (_sync)
        {
            DrainIncoming();
            if (_deleted)
            {
                return 0;
            }

            Volatile.Write(ref _deleted, true);
            var count = ReadyCount + _delayed.Count + (_blockedDue?.Count ?? 0);
            ClearSpilled();
            _waiting = 0;
            _ready.Clear();
            _expiries?.Clear();
            _delayed.Clear();
            _blockedDue?.Clear();
            if (_storeIds is not null)
            {
                foreach (var id in _storeIds.Values)
                {
                    _context.Durable!.Delete(id);
                }

                _storeIds.Clear();
            }

            var signal = _roomSignal;
            _roomSignal = null;
            signal?.TrySetException(new TopologyException($"Queue '{Name}' was deleted while a publisher waited for room in it; the message was not enqueued."));
            foreach (var c in _consumers)
            {
                c.Active = false;
                c.Removed = true;
                c.Channel.Writer.TryComplete(new TopologyException($"Queue '{Name}' was deleted while this consumer was reading it."));
            }

            _consumers.Clear();
            return count;
        }
    }
}
