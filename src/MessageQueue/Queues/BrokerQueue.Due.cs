using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Delayed publishes: waiting for their due time, then admitted at the tail (or held, or dead-lettered, by a full queue).</summary>
internal sealed partial class BrokerQueue
{
    /// <summary>A delayed publish became due (caller holds the lock): it joins the tail if there is room; a full
    /// queue drops its head (<see cref="OverflowPolicy.DropHead"/>), keeps it waiting for room
    /// (<see cref="OverflowPolicy.Block"/>), or dead-letters it with reason <c>maxlen</c> (the reject policies: its
    /// publish was confirmed long ago, so there is nobody to refuse).</summary>
    private void AdmitDue(QueueEntry entry)
    {
        if (_limits.IsLimited && Options.Overflow != OverflowPolicy.DropHead
            && !HasRoomFor(1, CountsBytes ? BodySize.Of(entry.Body) : 0))
        {
            if (Options.Overflow == OverflowPolicy.Block)
            {
                (_blockedDue ??= new()).Enqueue(entry); // still Delayed; promoted by RoomFreed
            }
            else
            {
                _counters.Rejected++;
                Kill(entry, DeathRecord.MaxLength, detail: null, exception: null);
            }

            return;
        }

        JoinTailOrSpill(entry, entry.StoreId, CountsBytes ? BodySize.Of(entry.Body) : 0); // under DropHead the caller trims the head
    }

    /// <summary>A lazy queue's delayed row became due (caller holds the lock): true when it is to be renumbered to the
    /// tail and join the disk part. A full queue under <see cref="OverflowPolicy.Block"/> keeps it delayed until
    /// there is room; under the reject policies it is read back and dead-lettered with reason <c>maxlen</c>.</summary>
    private bool AdmitDueRow(long id, int size)
    {
        if (!_limits.IsLimited || Options.Overflow == OverflowPolicy.DropHead || HasRoomFor(1, size))
        {
            _limits.PromiseDueRow(size, held: true); // its place is promised until it joins (CompleteDue)
            return true;
        }

        if (Options.Overflow == OverflowPolicy.Block)
        {
            (_blockedDueRows ??= new()).Enqueue((id, size)); // its row stays delayed until it is promoted
        }
        else
        {
            _counters.Rejected++;
            _becomingDue++;
            _ = Task.Run(() => DeadLetterRowAsync(id));
        }

        return false;
    }

    /// <summary>Reads a lazy queue's delayed row back to dead-letter it (it fell due in a full queue).</summary>
    private Task DeadLetterRowAsync(long id)
    {
        var log = _context.Durable!;
        List<DeadLetter>? dead = null;
        try
        {
            var rows = log.Store.Read([id]);
            var row = rows.Count > 0 ? rows[0] : null;
            var decoded = row is null ? null : TryDecode(row);
            lock (_sync)
            {
                _becomingDue--;
                if (_deleted)
                {
                    log.Delete(id); // deleted with its queue meanwhile
                }
                else if (row is not null && decoded is not null)
                {
                    var entry = EntryOf(row, decoded);
                    entry.StoreId = id;
                    Kill(entry, DeathRecord.MaxLength, detail: null, exception: null);
                    dead = TakeDeadLetters();
                }
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogLoadFailed(_context.Logger, Name, ex); // left as it is: delayed, due, and read again at the next start
            lock (_sync)
            {
                _becomingDue--;
            }
        }

        SendDeadLetters(dead);
        return Task.CompletedTask;
    }

    /// <summary>A delayed publish waits for its due time with no place in the queue yet; it gets one when it is
    /// due (caller holds the lock).</summary>
    private void AddDelayed(QueueEntry entry, long dueTicks)
    {
        entry.Sequence = 0;
        entry.SetState(EntryState.Delayed);
        _delayed.Add(entry, dueTicks);
        WakeAt(dueTicks);
    }

    /// <summary>An admitted delayed publish (caller holds the lock): a lazy queue keeps only its row's id, size and
    /// due time in memory; other queues keep the entry, with its row id if it has one.</summary>
    private void AddDelayedStored(QueueEntry entry, long dueTicks, long storeId, long size)
    {
        if (_lazy && storeId > 0)
        {
            entry.SetState(EntryState.Gone); // the row stands for it
            AddDelayedRow(storeId, (int)Math.Min(size, int.MaxValue), dueTicks);
            return;
        }

        entry.StoreId = storeId;
        AddDelayed(entry, dueTicks);
    }
}
