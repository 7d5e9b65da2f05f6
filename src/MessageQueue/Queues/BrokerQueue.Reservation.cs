using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>Reservations: places held for admitted messages while their rows are written (see Publishing.Admission.ReserveAsync).</summary>
internal sealed partial class BrokerQueue
{
    /// <summary>Holds a place for the admitted items while their rows are written (caller holds the lock): they count
    /// against the limits, and their deduplication ids are pending. Refusals are applied now.</summary>
    internal void Reserve(Span<AdmissionItem> items)
    {
        ApplyRefusals(items);
        foreach (ref var item in items)
        {
            if (item.Verdict != Verdict.Enqueue)
            {
                continue;
            }

            if (item.Due == 0)
            {
                _limits.Reserve(item.Size, held: true);
            }

            if (item.DedupId is { } id)
            {
                _dedup?.Hold(id);
            }
        }
    }

    /// <summary>The rows of reserved items are written: the items take their places (caller holds the lock). A queue
    /// deleted meanwhile deletes their rows, as it deleted its other messages.</summary>
    internal void ApplyReserved(Span<AdmissionItem> items)
    {
        Unreserve(items);
        if (_deleted)
        {
            foreach (var item in items)
            {
                if (item.Verdict == Verdict.Enqueue && item.Row is { Id: > 0 } row)
                {
                    _context.Durable!.Delete(row.Id);
                }
            }

            return;
        }

        ApplyAccepted(items, rememberInStore: false);
    }

    /// <summary>The rows of reserved items could not be written: their places are given up (caller holds the lock).</summary>
    internal void CancelReserved(Span<AdmissionItem> items)
    {
        Unreserve(items);
        if (_limits.IsLimited)
        {
            RoomFreed();
        }
    }

    private void Unreserve(Span<AdmissionItem> items)
    {
        foreach (ref var item in items)
        {
            if (item.Verdict != Verdict.Enqueue)
            {
                continue;
            }

            if (item.Due == 0)
            {
                _limits.Reserve(item.Size, held: false);
            }

            if (item.DedupId is { } id)
            {
                _dedup?.Release(id); // publishes of the same id waiting for this outcome plan again
            }
        }
    }
}
