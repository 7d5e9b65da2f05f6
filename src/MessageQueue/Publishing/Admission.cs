using MessageQueue.Queues;

namespace MessageQueue.Publishing;

/// <summary>
/// Admits the items of one publish (one message to several queues, or a transaction's messages) under the
/// locks of every queue they touch, taken in ascending queue id so that concurrent admissions cannot deadlock.
/// Each queue first plans; nothing changes unless every queue can take its part (or, for a single message,
/// the refusing queues are simply left out). A full <see cref="OverflowPolicy.Block"/> queue makes the
/// publisher release every lock and wait for room, then try again from the start.
/// </summary>
internal static class Admission
{
    /// <summary>Admits <paramref name="items"/>, waiting for room where a queue blocks.</summary>
    /// <param name="items">The items, ordered by queue id and, within a queue, by message (a stable sort).</param>
    /// <param name="atomic">All or nothing: a refusing queue fails the whole publish with <see cref="QueueFullException"/>,
    /// and a deleted queue with <see cref="TopologyException"/>.</param>
    /// <param name="cancellationToken">Cancels a wait for room; nothing is enqueued then.</param>
    internal static ValueTask RunAsync(AdmissionItem[] items, bool atomic, CancellationToken cancellationToken) =>
        RunAsync(items, atomic, reserve: false, cancellationToken);

    /// <summary>Decides <paramref name="items"/> as <see cref="RunAsync(AdmissionItem[], bool, CancellationToken)"/>
    /// does, but only reserves the places of the admitted ones: their rows are written next, and then
    /// <see cref="ApplyReserved"/> puts them in place (or <see cref="CancelReserved"/> gives the places up). Nothing
    /// refused, duplicate or cancelled is ever written.</summary>
    internal static ValueTask ReserveAsync(AdmissionItem[] items, bool atomic, CancellationToken cancellationToken) =>
        RunAsync(items, atomic, reserve: true, cancellationToken);

    private static ValueTask RunAsync(AdmissionItem[] items, bool atomic, bool reserve, CancellationToken cancellationToken)
    {
        if (items.Length == 0)
        {
            return ValueTask.CompletedTask; // a transaction whose messages reached no queue: nothing to admit
        }

        // The publish is work from now until its messages are in their queues (or reserved there): a publisher woken by
        // room in a Block queue has its message in no queue until it is admitted (see InFlight).
        var inFlight = items[0].Queue.InFlight;
        inFlight.BeginOperation();
        Task? wait;
        try
        {
            wait = TryAdmit(items, atomic, reserve);
        }
        catch
        {
            inFlight.EndOperation();
            throw;
        }

        if (wait is null)
        {
            inFlight.EndOperation();
            return ValueTask.CompletedTask;
        }

        return WaitAndRetryAsync(items, atomic, reserve, wait, inFlight, cancellationToken);
    }

    private static async ValueTask WaitAndRetryAsync(AdmissionItem[] items, bool atomic, bool reserve, Task wait, InFlight inFlight, CancellationToken cancellationToken)
    {
        try
        {
            Task? next = wait;
            while (next is not null)
            {
                await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                next = TryAdmit(items, atomic, reserve);
            }
        }
        finally
        {
            inFlight.EndOperation();
        }
    }

    /// <summary>Puts reserved items in place, under the locks of every queue they touch (all at once, as a single
    /// admission would), then sends the dead letters that made.</summary>
    internal static void ApplyReserved(AdmissionItem[] items) => UnderLocks(items, static (queue, span) => queue.ApplyReserved(span));

    /// <summary>Gives up the places of reserved items whose rows could not be written.</summary>
    internal static void CancelReserved(AdmissionItem[] items) => UnderLocks(items, static (queue, span) => queue.CancelReserved(span));

    private delegate void RangeAction(BrokerQueue queue, Span<AdmissionItem> items);

    private static void UnderLocks(AdmissionItem[] items, RangeAction action)
    {
        using var locks = new QueueLocks(items);
        for (var i = 0; i < locks.Count; i++)
        {
            var (queue, start, length) = locks[i];
            action(queue, items.AsSpan(start, length));
            locks.TakeDeadLetters(i);
        }
    }

    /// <summary>One attempt. Returns a task to wait on when a blocking queue is full, or null when done.</summary>
    private static Task? TryAdmit(AdmissionItem[] items, bool atomic, bool reserve)
    {
        using var locks = new QueueLocks(items);
        if (PlanAll(items, locks, atomic) is { } wait)
        {
            return wait;
        }

        for (var i = 0; i < locks.Count; i++)
        {
            var (queue, start, length) = locks[i];
            if (reserve)
            {
                queue.Reserve(items.AsSpan(start, length));
            }
            else
            {
                queue.ApplyAdmission(items.AsSpan(start, length));
            }

            locks.TakeDeadLetters(i);
        }

        return null;
    }

    /// <summary>Every queue plans its part (changing nothing but the items' verdicts). Throws when a queue refuses
    /// (or, <paramref name="atomic"/>, was deleted); returns a task to wait on when a blocking queue is full.</summary>
    private static Task? PlanAll(AdmissionItem[] items, in QueueLocks locks, bool atomic)
    {
        List<(string Queue, string Limit)>? full = null;
        Task? wait = null;
        for (var i = 0; i < locks.Count; i++)
        {
            var (queue, start, length) = locks[i];
            var span = items.AsSpan(start, length);
            switch (queue.PlanAdmission(span, atomic, canWait: true, out var waitHere, out var limit))
            {
                case Plan.Deleted when atomic:
                    throw new TopologyException($"Queue '{queue.Name}' was deleted before the transaction committed; nothing was enqueued.");
                case Plan.Deleted:
                    foreach (ref var item in span)
                    {
                        item.Verdict = Verdict.QueueDeleted;
                    }

                    break;
                case Plan.Wait:
                    wait ??= waitHere;
                    break;
                case Plan.Full:
                    (full ??= []).Add((queue.Name, limit!));
                    break;
            }
        }

        return full is not null ? throw new QueueFullException(full, [], deadLettered: false, transaction: atomic) : wait;
    }

    /// <summary>
    /// The locks of every queue the items touch, taken in ascending queue id (the items' order) when made. Disposing
    /// releases them, then sends the dead letters taken under them: they enter other queues, so they are sent once
    /// every lock here is released.
    /// </summary>
    private readonly ref struct QueueLocks
    {
        private readonly List<(BrokerQueue Queue, int Start, int Length)> _ranges;
        private readonly List<DeadLetter>?[] _dead;

        internal QueueLocks(AdmissionItem[] items)
        {
            _ranges = Ranges(items);
            _dead = new List<DeadLetter>?[_ranges.Count];
            var entered = 0;
            try
            {
                foreach (var (queue, _, _) in _ranges)
                {
                    queue.Sync.Enter();
                    entered++;
                }
            }
            catch
            {
                Exit(entered);
                throw;
            }
        }

        internal int Count => _ranges.Count;

        internal (BrokerQueue Queue, int Start, int Length) this[int index] => _ranges[index];

        /// <summary>Takes the dead letters the queue at <paramref name="index"/> made under its lock.</summary>
        internal void TakeDeadLetters(int index) => _dead[index] = _ranges[index].Queue.TakeDeadLettersForAdmission();

        public void Dispose()
        {
            Exit(_ranges.Count);
            for (var i = 0; i < _ranges.Count; i++)
            {
                _ranges[i].Queue.SendDeadLettersAfterAdmission(_dead[i]);
            }
        }

        private void Exit(int entered)
        {
            for (var i = entered - 1; i >= 0; i--)
            {
                _ranges[i].Queue.Sync.Exit();
            }
        }
    }

    private static List<(BrokerQueue Queue, int Start, int Length)> Ranges(AdmissionItem[] items)
    {
        var ranges = new List<(BrokerQueue, int, int)>();
        var start = 0;
        for (var i = 1; i <= items.Length; i++)
        {
            if (i == items.Length || !ReferenceEquals(items[i].Queue, items[start].Queue))
            {
                ranges.Add((items[start].Queue, start, i - start));
                start = i;
            }
        }

        return ranges;
    }

    /// <summary>Sorts items by queue id, keeping message order within a queue.</summary>
    internal static AdmissionItem[] Order(List<AdmissionItem> items) =>
        items.Count < 2 ? [.. items] : [.. items.OrderBy(i => i.Queue.Id).ThenBy(i => i.Message)];
}
