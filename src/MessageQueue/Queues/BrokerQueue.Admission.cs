using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>
/// Admission: the locked way into a queue, for queues with a length limit or a deduplication window (every
/// message into them takes this path) and for transactions (whose messages must appear all at once). The
/// caller holds the lock of every queue the publish touches (<see cref="Publishing.Admission"/>): first each
/// queue plans (decides every item's verdict without changing anything), then, when no queue asks to wait or
/// refuses an all-or-nothing publish, each applies its plan.
/// </summary>
internal sealed partial class BrokerQueue
{
    private static int s_nextId;

    private readonly LengthLimits _limits;
    private Queue<QueueEntry>? _blockedDue;
    private readonly bool _stored;

    /// <summary>Orders queue locks: several are always taken in ascending id, so they cannot deadlock.</summary>
    internal int Id { get; } = Interlocked.Increment(ref s_nextId);

    internal Lock Sync => _sync;

    /// <summary>Whether every message into this queue must be admitted under its lock.</summary>
    internal bool IsGuarded => _limits.IsLimited || _dedup is not null || _stored;

    /// <summary>Whether messages of this queue are written to the store (persistent ones of a durable queue, all of a lazy one).</summary>
    internal bool IsStored => _stored;

    /// <summary>Whether a message with this persistence needs a row in the store to enter this queue.</summary>
    internal bool NeedsRow(bool persistent) => _stored && (persistent || _lazy);

    /// <summary>Whether admission needs each body's size.</summary>
    internal bool CountsBytes => Options.MaxLengthBytes is not null;

    /// <summary>Whether <paramref name="count"/> more messages of <paramref name="bytes"/> fit, counting the places
    /// already promised: reserved publishes and due delayed rows on their way to the tail (caller holds the lock).</summary>
    private bool HasRoomFor(long count, long bytes) =>
        _limits.HasRoomFor(ReadyCount, ReadyBytes, count, bytes);

    /// <summary>
    /// Decides the verdict of each item bound for this queue (caller holds the lock), changing nothing but the
    /// items. <paramref name="atomic"/>: a refusal refuses the whole publish. <paramref name="canWait"/>: a
    /// publisher can wait for room (a <see cref="OverflowPolicy.Block"/> queue then returns <see cref="Plan.Wait"/>).
    /// </summary>
    internal Plan PlanAdmission(Span<AdmissionItem> items, bool atomic, bool canWait, out Task? wait, out string? limit)
    {
        wait = null;
        limit = null;
        if (_deleted)
        {
            return Plan.Deleted;
        }

        DrainIncoming();
        if (!PlanDuplicates(items, canWait, out wait, out var adding, out var addingBytes))
        {
            return Plan.Wait;
        }

        if (!_limits.IsLimited || adding == 0 || HasRoomFor(adding, addingBytes))
        {
            return Plan.Ok;
        }

        return PlanOverflow(items, atomic, canWait, adding, addingBytes, out wait, out limit);
    }

    /// <summary>Marks the duplicates among <paramref name="items"/> (of ids remembered, or repeated in the batch) and
    /// counts the others that join the ready list now. False when an id's publish is being written and the caller can
    /// wait: <paramref name="wait"/> completes on its outcome.</summary>
    private bool PlanDuplicates(Span<AdmissionItem> items, bool canWait, out Task? wait, out long adding, out long addingBytes)
    {
        wait = null;
        adding = addingBytes = 0;
        HashSet<string>? batchIds = null;
        _dedup?.ForgetExpired(_context.Clock.UtcNowTicks());
        for (var i = 0; i < items.Length; i++)
        {
            ref var item = ref items[i];
            item.Verdict = Verdict.Enqueue;
            if (item.DedupId is { } id && _dedup is { } dedup)
            {
                if (dedup.IsPending(id) && canWait)
                {
                    // The same id is being written by another publish: its outcome decides whether this is a duplicate.
                    wait = dedup.PendingOutcome();
                    return false;
                }

                if (dedup.Contains(id) || (items.Length > 1 && !(batchIds ??= new(StringComparer.Ordinal)).Add(id)))
                {
                    item.Verdict = Verdict.Duplicate;
                    continue;
                }
            }

            if (item.Due == 0)
            {
                adding++;
                addingBytes += item.Size;
            }
        }

        return true;
    }

    /// <summary>The verdicts when the items do not fit: by the overflow policy, wait for room, refuse the publish, or
    /// refuse (and possibly dead-letter) each item joining the ready list.</summary>
    private Plan PlanOverflow(Span<AdmissionItem> items, bool atomic, bool canWait, long adding, long addingBytes, out Task? wait, out string? limit)
    {
        wait = null;
        limit = null;
        var overflow = Options.Overflow;
        if (overflow == OverflowPolicy.DropHead)
        {
            return Plan.Ok; // applying drops the oldest until it fits
        }

        limit = _limits.Describe(ReadyCount, ReadyBytes, adding, addingBytes);
        if (overflow == OverflowPolicy.Block && canWait)
        {
            if (!_limits.Fits(adding, addingBytes))
            {
                limit += "; this publish alone exceeds the limit, so it could never fit";
                return Plan.Full;
            }

            // After the waiters were failed (the broker is stopping), a late publisher fails too instead of waiting forever.
            wait = _limits.WaitForRoom();
            return Plan.Wait;
        }

        if (atomic)
        {
            return Plan.Full;
        }

        // One message, refused here; a dead letter or redriven message arriving at a full Block queue is refused too.
        var verdict = overflow == OverflowPolicy.RejectPublishDeadLetter ? Verdict.RejectedDeadLetter : Verdict.Rejected;
        for (var i = 0; i < items.Length; i++)
        {
            if (items[i].Verdict == Verdict.Enqueue && items[i].Due == 0)
            {
                items[i].Verdict = verdict;
                items[i].Limit = limit;
            }
        }

        return Plan.Ok;
    }

    /// <summary>Carries out the verdicts decided by <see cref="PlanAdmission"/> (caller holds the lock) and hands
    /// new messages to waiting consumers. Dead letters it produces are collected for <see cref="TakeDeadLettersForAdmission"/>.</summary>
    internal void ApplyAdmission(Span<AdmissionItem> items)
    {
        ApplyRefusals(items);
        ApplyAccepted(items, rememberInStore: true);
    }

    /// <summary>Counts the items refused or found duplicate, and dead-letters those refused under
    /// <see cref="OverflowPolicy.RejectPublishDeadLetter"/> (caller holds the lock).</summary>
    internal void ApplyRefusals(Span<AdmissionItem> items)
    {
        foreach (ref var item in items)
        {
            switch (item.Verdict)
            {
                case Verdict.Duplicate:
                    _counters.Duplicates++;
                    break;
                case Verdict.Rejected:
                    _counters.Rejected++;
                    break;
                case Verdict.RejectedDeadLetter:
                    _counters.Rejected++;
                    Kill(item.Entry, DeathRecord.MaxLength, detail: null, exception: null);
                    break;
            }
        }
    }

    /// <summary>Puts the admitted items in place (caller holds the lock): delayed ones in the delayed set, the others
    /// at the tail (spilled, in a lazy queue whose window is full); then hands them to waiting consumers and applies
    /// the limits. Items with rows take their row ids, written by now.</summary>
    private void ApplyAccepted(Span<AdmissionItem> items, bool rememberInStore)
    {
        var ttlZero = false;
        foreach (ref var item in items)
        {
            if (item.Verdict != Verdict.Enqueue)
            {
                continue;
            }

            var entry = item.Entry;
            _counters.Published++;
            if (item.DedupId is { } id && _dedup is { } dedup)
            {
                // The time the store remembers (taken before the write) is the time memory remembers, so forgetting it
                // later deletes the stored id.
                dedup.Remember(id, item.SeenAt != 0 ? item.SeenAt : _context.Clock.UtcNowTicks(), rememberInStore);
            }

            var storeId = item.Row?.Id ?? 0;
            if (item.Due > 0)
            {
                AddDelayedStored(entry, item.Due, storeId, item.Size);
            }
            else
            {
                JoinTailOrSpill(entry, storeId, item.Size);
                ttlZero |= MayExpire(entry) && TtlTicks(entry) == 0;
            }
        }

        Dispatch(); // a waiting consumer takes what it can first (so MaxLength 0 still delivers to one)
        DropHeadToLimits();
        if (ttlZero)
        {
            // Time to live zero: delivered now to a waiting consumer, or expired.
            foreach (var item in items)
            {
                var entry = item.Entry;
                if (item.Verdict == Verdict.Enqueue && item.Due == 0 && MayExpire(entry) && TtlTicks(entry) == 0)
                {
                    ExpireIfStillReady(entry);
                }
            }
        }
    }

    /// <summary>The dead letters produced under the lock, to be sent by <see cref="SendDeadLettersAfterAdmission"/> once every lock is released.</summary>
    internal List<DeadLetter>? TakeDeadLettersForAdmission() => TakeDeadLetters();

    internal void SendDeadLettersAfterAdmission(List<DeadLetter>? dead) => SendDeadLetters(dead);

    /// <summary>Under <see cref="OverflowPolicy.DropHead"/>, dead-letters the oldest ready messages (reason
    /// <c>maxlen</c>) until the queue is within its limits (caller holds the lock).</summary>
    private void DropHeadToLimits()
    {
        if (!_limits.IsLimited || Options.Overflow != OverflowPolicy.DropHead)
        {
            return;
        }

        while (!_limits.Fits(ReadyCount, ReadyBytes))
        {
            if (_ready.TryTake(out var head))
            {
                Kill(head, DeathRecord.MaxLength, detail: null, exception: null);
            }
            else if (!OweDrop())
            {
                break;
            }
        }

        if (_lazy)
        {
            MaybeRefill();
        }
    }

    private void JoinTail(QueueEntry entry)
    {
        DrainIncoming();
        entry.SetState(EntryState.Ready);
        entry.Sequence = ++_sequence;
        _ready.Append(entry);
        IndexExpiry(entry);
    }

    /// <summary>Called when ready messages left a limited queue (caller holds the lock): due messages waiting for
    /// room join first, then blocked publishers are woken to try again.</summary>
    private void RoomFreed()
    {
        if (_blockedDue is { Count: > 0 } blocked)
        {
            while (blocked.TryPeek(out var next)
                && HasRoomFor(1, CountsBytes ? BodySize.Of(next.Body) : 0))
            {
                blocked.Dequeue();
                JoinTailOrSpill(next, next.StoreId, CountsBytes ? BodySize.Of(next.Body) : 0);
            }
        }

        if (_blockedDueRows is { Count: > 0 } blockedRows)
        {
            List<Renumbering>? promoted = null;
            while (blockedRows.TryPeek(out var row) && HasRoomFor(1, row.Size))
            {
                blockedRows.Dequeue();
                _limits.PromiseDueRow(row.Size, held: true);
                (promoted ??= []).Add(new Renumbering(null, row.Id, row.Size));
            }

            if (promoted is not null)
            {
                RenumberDue(promoted);
            }
        }

        if (_limits.HasWaiters && HasRoomFor(1, 1))
        {
            _limits.WakeWaiters();
        }
    }

    /// <summary>Fails every publisher waiting for room (the queue was deleted, or the broker disposed).</summary>
    internal void FailWaiters(Exception exception)
    {
        lock (_sync)
        {
            _limits.FailWaiters(exception, forever: true);
        }
    }

}
