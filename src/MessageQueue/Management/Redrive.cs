using MessageQueue.Publishing;
using MessageQueue.Queues;

namespace MessageQueue.Management;

/// <summary>
/// Moves dead letters back to the queue of their death history that <see cref="RedriveTarget"/> names. Each move is
/// decided before anything is written: the target admits the copy (a full target that refuses keeps the message in
/// the dead-letter queue, in its place, never dead-lettering it back there), then, between stored queues, the copy's
/// row is inserted and the dead letter's row deleted in one transaction; a move into memory deletes the row after
/// the copy is in place. A lazy dead-letter queue is redriven through its whole backlog: its window in memory, then
/// its rows on disk, read page by page while its own reads are paused. The call completes when every move is on disk.
/// </summary>
internal sealed class Redrive(BrokerContext context, BrokerQueue source, RedriveTarget target)
{
    private const int Page = 256;
    private readonly HashSet<QueueEntry> _stayed = new(ReferenceEqualityComparer.Instance);
    private int _moved;
    private int _generation;
    private bool _deletedRows;

    internal async Task<int> RunAsync(int max)
    {
        context.InFlight.BeginOperation(); // taken messages are in no queue until their copies are (see InFlight)
        try
        {
            return await RunPagesAsync(max).ConfigureAwait(false);
        }
        finally
        {
            context.InFlight.EndOperation();
        }
    }

    private async Task<int> RunPagesAsync(int max)
    {
        if (source.IsLazy)
        {
            await source.PauseLoads().ConfigureAwait(false);
        }

        try
        {
            while (_moved < max)
            {
                var taken = source.TakeForMove(e => !_stayed.Contains(e) && Origin(e) is { IsDeleted: false } origin && origin != source, Math.Min(Page, max - _moved));
                if (taken.Count == 0)
                {
                    break;
                }

                await MoveAsync([.. taken.Select(e => new Candidate(e, 0))]).ConfigureAwait(false);
            }

            if (source.IsLazy && _moved < max && source.DiskPart is var (after, upTo, generation))
            {
                _generation = generation;
                await MoveFromDiskAsync(after, upTo, max).ConfigureAwait(false);
            }

            if (_deletedRows)
            {
                // Rows deleted after moves into memory queues are on disk before the queue reads its disk part again.
                await context.Durable!.Barrier().ConfigureAwait(false);
            }
        }
        finally
        {
            if (source.IsLazy)
            {
                source.ResumeLoads();
            }
        }

        return _moved;
    }

    /// <summary>Moves the rows of a lazy dead-letter queue's disk part, in order, page by page.</summary>
    private async Task MoveFromDiskAsync(long after, long upTo, int max)
    {
        while (_moved < max)
        {
            var rows = source.ReadDisk(after, upTo, Page);
            if (rows.Count == 0)
            {
                return;
            }

            after = rows[^1].Id;
            var candidates = rows
                .Where(r => Origin(r.Entry) is { IsDeleted: false } origin && origin != source)
                .Take(max - _moved)
                .Select(r => new Candidate(r.Entry, r.Size))
                .ToList();
            await MoveAsync(candidates).ConfigureAwait(false);
        }
    }

    /// <summary>Offers each candidate to its queue; the accepted ones move (one store transaction for all that need
    /// rows), the refused ones stay.</summary>
    private async Task MoveAsync(List<Candidate> candidates)
    {
        var pending = new List<Candidate>();
        var handover = new Handover(retry: false, mustBeDurable: true); // the call completes when the moves are on disk
        var now = context.Time.GetUtcNow().UtcTicks;
        foreach (var candidate in candidates)
        {
            if (candidate.OnDisk && !source.TakeFromDisk(candidate.Size, taken: true, _generation))
            {
                continue; // purged meanwhile: not the dead-letter queue's to move any more
            }

            Settle(candidate, OfferToOrigin(candidate.Entry, handover, now), handover, pending);
        }

        if (handover.Pending == 0)
        {
            return;
        }

        try
        {
            await context.Durable!.SubmitAsync(handover.Unit).ConfigureAwait(false);
        }
        catch
        {
            // Not written: the offers were given up (Handover); the messages are put back where they were.
            foreach (var candidate in pending)
            {
                _moved--;
                StayInPlace(candidate, remember: false);
            }

            throw;
        }
    }

    /// <summary>Offers a copy of the dead letter to the queue it goes back to.</summary>
    private OfferResult OfferToOrigin(QueueEntry entry, Handover handover, long now)
    {
        var origin = Origin(entry);
        var copy = origin?.NewEntry(entry.Body, entry.GetProperties(), "", origin.Name, now, entry.Priority);
        byte[]? envelope = null;
        return origin is null || copy is null ? OfferResult.Deleted
            : origin.NeedsOffer ? origin.Offer(copy, ref envelope, handover, deadLetterRefused: false)
            : origin.Enqueue(copy) ? OfferResult.Joined : OfferResult.Deleted;
    }

    /// <summary>Settles a candidate after its offer: moved (its row deleted now, or with the copy's row in one
    /// transaction when the copy needs one), or left in its place.</summary>
    private void Settle(Candidate candidate, OfferResult result, Handover handover, List<Candidate> pending)
    {
        var entry = candidate.Entry;
        switch (result)
        {
            case OfferResult.Joined:
                _moved++;
                if (entry.StoreId > 0)
                {
                    context.Durable!.Delete(entry.StoreId);
                    _deletedRows = true;
                }

                break;
            case OfferResult.Pending:
                _moved++;
                pending.Add(candidate);
                if (entry.StoreId > 0)
                {
                    handover.Unit.Deletes.Add(entry.StoreId);
                }

                break;
            default:
                StayInPlace(candidate, remember: true); // refused, or its queue is gone
                break;
        }
    }

    /// <summary>Puts a candidate back in its place: on disk, or in memory (then, when <paramref name="remember"/>, not
    /// taken again by this redrive).</summary>
    private void StayInPlace(Candidate candidate, bool remember)
    {
        if (candidate.OnDisk)
        {
            source.TakeFromDisk(candidate.Size, taken: false, _generation);
            return;
        }

        if (remember)
        {
            _stayed.Add(candidate.Entry);
        }

        source.PutBack(candidate.Entry);
    }

    /// <summary>The queue a dead letter goes back to, if it still exists.</summary>
    private BrokerQueue? Origin(QueueEntry entry)
    {
        var properties = entry.GetProperties();
        var name = target == RedriveTarget.FirstDeath
            ? properties.Headers.TryGetValue(HeaderRules.FirstDeathQueue, out var first) ? first as string : null
            : properties.Deaths.Count > 0 ? properties.Deaths[0].Queue : null;
        return name is not null && context.Topology.TryGetQueue(name, out var queue) ? queue : null;
    }

    /// <summary>A dead letter to move: in memory, or a row of the disk part (its stored size given).</summary>
    private readonly record struct Candidate(QueueEntry Entry, int Size)
    {
        internal bool OnDisk => Size > 0;
    }
}
