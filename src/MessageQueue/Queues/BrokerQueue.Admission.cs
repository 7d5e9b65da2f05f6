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

    private readonly bool _limited;
    private readonly int _maxLength;
    private readonly long _maxBytes;
    private readonly long _dedupWindowTicks;
    private TaskCompletionSource? _roomSignal;
    private Queue<QueueEntry>? _blockedDue;
    private readonly Dictionary<QueueEntry, long>? _storeIds;
    private Dictionary<string, long>? _seen;
    private Queue<(string Id, long At)>? _seenOrder;
    private long _rejected;
    private long _duplicates;

    /// <summary>Orders queue locks: several are always taken in ascending id, so they cannot deadlock.</summary>
    internal int Id { get; } = Interlocked.Increment(ref s_nextId);

    internal Lock Sync => _sync;

    /// <summary>Whether every message into this queue must be admitted under its lock.</summary>
    internal bool IsGuarded => _limited || _dedupWindowTicks > 0 || _storeIds is not null;

    /// <summary>Whether messages of this queue are written to the store (persistent ones of a durable queue, all of a lazy one).</summary>
    internal bool IsStored => _storeIds is not null;

    /// <summary>Whether a message with this persistence needs a row in the store to enter this queue.</summary>
    internal bool NeedsRow(bool persistent) => _storeIds is not null && (persistent || _spill is not null);

    /// <summary>Whether admission needs each body's size.</summary>
    internal bool CountsBytes => Options.MaxLengthBytes is not null;

    private bool HasRoom(long count, long bytes) => count <= _maxLength && bytes <= _maxBytes;

    private string DescribeLimit(long adding, long addingBytes)
    {
        var parts = new List<string>(2);
        if (Options.MaxLength is { } max && ReadyCount + adding > max)
        {
            parts.Add($"MaxLength = {max}, {ReadyCount} ready");
        }

        if (Options.MaxLengthBytes is { } maxBytes && ReadyBytes + addingBytes > maxBytes)
        {
            parts.Add($"MaxLengthBytes = {maxBytes}, {ReadyBytes} bytes ready, {addingBytes} more");
        }

        return string.Join("; ", parts);
    }

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
        HashSet<string>? batchIds = null;
        if (_dedupWindowTicks > 0)
        {
            ForgetOldIds(_context.Clock.UtcNowTicks());
        }

        long adding = 0, addingBytes = 0;
        for (var i = 0; i < items.Length; i++)
        {
            ref var item = ref items[i];
            item.Verdict = Verdict.Enqueue;
            if (item.DedupId is { } id && _seen is not null
                && (_seen.ContainsKey(id) || (items.Length > 1 && !(batchIds ??= new(StringComparer.Ordinal)).Add(id))))
            {
                item.Verdict = Verdict.Duplicate;
                continue;
            }

            if (item.Due == 0)
            {
                adding++;
                addingBytes += item.Size;
            }
        }

        if (!_limited || adding == 0 || HasRoom(ReadyCount + adding, ReadyBytes + addingBytes))
        {
            return Plan.Ok;
        }

        var overflow = Options.Overflow;
        if (overflow == OverflowPolicy.DropHead)
        {
            return Plan.Ok; // applying drops the oldest until it fits
        }

        limit = DescribeLimit(adding, addingBytes);
        if (overflow == OverflowPolicy.Block && canWait)
        {
            if (!HasRoom(adding, addingBytes))
            {
                limit += "; this publish alone exceeds the limit, so it could never fit";
                return Plan.Full;
            }

            wait = (_roomSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
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
        var ttlZero = false;
        foreach (ref var item in items)
        {
            var entry = item.Entry;
            switch (item.Verdict)
            {
                case Verdict.Enqueue:
                    _published++;
                    if (item.DedupId is { } id && _dedupWindowTicks > 0)
                    {
                        RememberId(id);
                    }

                    if (item.Due > 0)
                    {
                        if (item.StoreId > 0)
                        {
                            _storeIds![entry] = item.StoreId;
                        }

                        AddDelayed(entry, item.Due);
                    }
                    else
                    {
                        JoinTailOrSpill(entry, item.StoreId, item.Size);
                        ttlZero |= MayExpire(entry) && TtlTicks(entry) == 0;
                    }

                    break;
                case Verdict.Duplicate:
                    _duplicates++;
                    DeleteUnadmitted(item.StoreId);
                    break;
                case Verdict.Rejected:
                    _rejected++;
                    DeleteUnadmitted(item.StoreId);
                    break;
                case Verdict.RejectedDeadLetter:
                    _rejected++;
                    Kill(entry, DeathRecord.MaxLength, detail: null, exception: null, item.StoreId);
                    break;
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

    /// <summary>A message was written to the store before admission and then not admitted: its row goes.</summary>
    internal void DeleteUnadmitted(long storeId)
    {
        if (storeId > 0)
        {
            _context.Durable!.Delete(storeId);
        }
    }

    /// <summary>The dead letters produced under the lock, to be sent by <see cref="SendDeadLettersAfterAdmission"/> once every lock is released.</summary>
    internal List<DeadLetter>? TakeDeadLettersForAdmission() => TakeDeadLetters();

    internal void SendDeadLettersAfterAdmission(List<DeadLetter>? dead) => SendDeadLetters(dead);

    /// <summary>Adds a message that has no publisher waiting on it (a dead letter, a redriven message) to a guarded
    /// queue: a full queue drops its head or refuses it (dead-lettering it under <see cref="OverflowPolicy.RejectPublishDeadLetter"/>);
    /// deduplication does not apply. Returns whether it was enqueued.</summary>
    private bool EnqueueGuarded(QueueEntry entry)
    {
        long size;
        try
        {
            size = CountsBytes ? BodySize.Of(entry.Body) : 0;
        }
        catch (MessageQueueException)
        {
            lock (_sync)
            {
                _rejected++;
            }

            Notify();
            return false; // cannot be measured against MaxLengthBytes: refused like a message that does not fit
        }

        var storeId = NeedsRow(entry.GetProperties().Persistent) ? Store(entry) : 0;
        Span<AdmissionItem> items = [new AdmissionItem(this, entry, 0, null, size, 0, storeId)];
        List<DeadLetter>? dead;
        lock (_sync)
        {
            if (PlanAdmission(items, atomic: false, canWait: false, out _, out _) == Plan.Deleted)
            {
                DeleteUnadmitted(storeId);
                return false;
            }

            ApplyAdmission(items);
            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
        return items[0].Verdict == Verdict.Enqueue;
    }

    /// <summary>Under <see cref="OverflowPolicy.DropHead"/>, dead-letters the oldest ready messages (reason
    /// <c>maxlen</c>) until the queue is within its limits (caller holds the lock).</summary>
    private void DropHeadToLimits()
    {
        if (!_limited || Options.Overflow != OverflowPolicy.DropHead)
        {
            return;
        }

        while (!HasRoom(ReadyCount, ReadyBytes))
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

        if (_spill is not null)
        {
            MaybeRefill();
        }
    }

    /// <summary>A delayed publish became due (caller holds the lock): it joins the tail if there is room; a full
    /// queue drops its head (<see cref="OverflowPolicy.DropHead"/>), keeps it waiting for room
    /// (<see cref="OverflowPolicy.Block"/>), or dead-letters it with reason <c>maxlen</c> (the reject policies: its
    /// publish was confirmed long ago, so there is nobody to refuse).</summary>
    private void AdmitDue(QueueEntry entry)
    {
        if (_limited && Options.Overflow != OverflowPolicy.DropHead
            && !HasRoom(ReadyCount + 1, ReadyBytes + (CountsBytes ? BodySize.Of(entry.Body) : 0)))
        {
            if (Options.Overflow == OverflowPolicy.Block)
            {
                (_blockedDue ??= new()).Enqueue(entry); // still Delayed; promoted by RoomFreed
            }
            else
            {
                _rejected++;
                Kill(entry, DeathRecord.MaxLength, detail: null, exception: null);
            }

            return;
        }

        JoinTailFromMemory(entry); // under DropHead the caller trims the head after dispatching
    }

    /// <summary>A due delayed message takes its place at the tail, behind everything published before it
    /// became due (caller holds the lock).</summary>
    /// <summary>A delayed publish waits for its due time with no place in the queue yet; it gets one when it is
    /// due (caller holds the lock).</summary>
    private void AddDelayed(QueueEntry entry, long dueTicks)
    {
        entry.Sequence = 0;
        entry.SetState(EntryState.Delayed);
        _delayed.Enqueue(entry, dueTicks);
        WakeAt(dueTicks);
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
                && HasRoom(ReadyCount + 1, ReadyBytes + (CountsBytes ? BodySize.Of(next.Body) : 0)))
            {
                blocked.Dequeue();
                JoinTailFromMemory(next);
            }
        }

        if (_roomSignal is { } signal && HasRoom(ReadyCount + 1, ReadyBytes + 1))
        {
            _roomSignal = null;
            signal.TrySetResult();
        }
    }

    /// <summary>Fails every publisher waiting for room (the queue was deleted, or the broker disposed).</summary>
    internal void FailWaiters(Exception exception)
    {
        lock (_sync)
        {
            var signal = _roomSignal;
            _roomSignal = null;
            signal?.TrySetException(exception);
        }
    }

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
    private bool RemembersDurably => _storeIds is not null && Options.Durable;

    private void RememberId(string id) => RememberId(id, _context.Clock.UtcNowTicks(), store: true);

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

/// <summary>One message bound for one queue in an admission.</summary>
internal struct AdmissionItem(BrokerQueue queue, QueueEntry entry, long due, string? dedupId, long size, int message, long storeId = 0)
{
    /// <summary>The message's row in the store when it was written before admission, or 0.</summary>
    internal long StoreId = storeId;

    internal readonly BrokerQueue Queue = queue;
    internal readonly QueueEntry Entry = entry;

    /// <summary>When a delayed message becomes ready (UTC ticks), or 0.</summary>
    internal readonly long Due = due;

    /// <summary>The publisher's message id, checked against deduplication windows; null when generated.</summary>
    internal readonly string? DedupId = dedupId;

    internal readonly long Size = size;

    /// <summary>Which message of the publish (transactions have several).</summary>
    internal readonly int Message = message;

    internal Verdict Verdict;

    /// <summary>For a refused item: the limit the queue reached.</summary>
    internal string? Limit;
}

/// <summary>What admission does with one item.</summary>
internal enum Verdict
{
    Pending,
    Enqueue,
    Duplicate,
    Rejected,
    RejectedDeadLetter,
    QueueDeleted,
}

/// <summary>A queue's answer when planning an admission.</summary>
internal enum Plan
{
    Ok,
    Wait,
    Full,
    Deleted,
}
