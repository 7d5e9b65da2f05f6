using MessageQueue.Publishing;
using MessageQueue.Queues;
using MessageQueue.Storage;

namespace MessageQueue;

/// <summary>Publishing into queues that store messages: decided first, then written, then put in place.</summary>
internal sealed partial class MessageBroker
{
    private async ValueTask<PublishResult> AdmitPersistedAsync(AdmissionItem[] items, List<NewRow> rows, MessageProperties? properties, string? mandatoryExchange, string routingKey, CancellationToken cancellationToken)
    {
        await AdmitStoredAsync(items, atomic: false, cancellationToken).ConfigureAwait(false);
        return Outcome(items, properties, mandatoryExchange, routingKey);
    }

    /// <summary>Admits items some of which need rows: decides and reserves first (waiting for room where a queue
    /// blocks; refusing, or finding duplicates, before anything is written), then writes the rows of the admitted
    /// ones in one transaction, which puts every admitted item in place once it is on disk. Throws
    /// <see cref="MessageStoreException"/> when the write fails: then no item is in any queue.</summary>
    private async ValueTask AdmitStoredAsync(AdmissionItem[] items, bool atomic, CancellationToken cancellationToken)
    {
        await Admission.ReserveAsync(items, atomic, cancellationToken).ConfigureAwait(false);
        var unit = new StoreUnit
        {
            MustBeDurable = true,
            Committed = () => Admission.ApplyReserved(items),
            Failed = _ => Admission.CancelReserved(items),
        };
        var now = _context.Clock.UtcNowTicks();
        var admitted = false;
        for (var i = 0; i < items.Length; i++)
        {
            ref var item = ref items[i];
            if (item.Verdict != Verdict.Enqueue)
            {
                continue;
            }

            admitted = true;
            if (item.Row is { } row)
            {
                unit.Rows.Add(row);
            }

            if (item.DedupId is { } id && item.Queue.RemembersDurably && item.Queue.Options.DeduplicationWindow is not null)
            {
                item.SeenAt = now; // remembered at this time in the store and in memory
                unit.Remember.Add(new RememberedId(item.Queue.Name, id, now));
            }
        }

        if (unit.IsEmpty)
        {
            if (admitted)
            {
                Admission.ApplyReserved(items); // nothing to write (refused or duplicate where rows were needed)
            }

            return;
        }

        Task written;
        try
        {
            written = _context.Durable!.SubmitAsync(unit);
        }
        catch
        {
            Admission.CancelReserved(items);
            throw;
        }

        await written.ConfigureAwait(false);
    }

    /// <summary>Encodes the persistent messages bound for durable queues, and all bound for lazy ones (each message
    /// once), and gives each such item its row (written after admission decides); null when there are none. Throws
    /// <see cref="MessageSerializationException"/> before anything is written or enqueued.</summary>
    private static List<NewRow>? PrepareRows(AdmissionItem[] items)
    {
        List<NewRow>? rows = null;
        Dictionary<int, byte[]>? envelopes = null;
        for (var i = 0; i < items.Length; i++)
        {
            ref var item = ref items[i];
            if (!item.Queue.NeedsRow(item.Entry.GetProperties().Persistent))
            {
                continue;
            }

            envelopes ??= [];
            var row = item.Queue.CreateRow(item.Entry, item.Due, envelopes.GetValueOrDefault(item.Message));
            envelopes.TryAdd(item.Message, row.Envelope);
            item.Row = row;
            (rows ??= []).Add(row);
        }

        return rows;
    }
}
