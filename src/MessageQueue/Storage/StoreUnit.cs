using MessageQueue.Queues;

namespace MessageQueue.Storage;

/// <summary>
/// Changes that are decided together and written in one transaction, never split: a publish's rows (with the
/// deduplication ids it makes its queues remember), a dead letter's rows in its targets with the delete of its row in
/// the queue it died in, a redrive's moves, a delayed message's renumbering when it becomes due. The store writer
/// gives new rows their ids when the unit is submitted (so ids grow in the order units are written), writes the
/// unit, then runs <see cref="Committed"/> on its applier thread (or on the writer thread, when nothing else waits), in
/// submission order: that is where the messages join
/// their queues, so what is in memory follows what is on disk, in the same order.
/// </summary>
internal sealed class StoreUnit
{
    /// <summary>Rows to insert; their ids are given at submission.</summary>
    internal List<NewRow> Rows { get; } = [];

    /// <summary>Rows to delete (a dead letter's or a redriven message's row in the queue it leaves).</summary>
    internal List<long> Deletes { get; } = [];

    /// <summary>Delayed rows that became due: each takes a new id at the tail and loses its due time.</summary>
    internal List<Renumbering> Renumbers { get; } = [];

    /// <summary>Deduplication ids to remember with the rows.</summary>
    internal List<RememberedId> Remember { get; } = [];

    /// <summary>Runs on the log's applier thread (or its writer thread: see <see cref="DurableLog"/>) after the unit is
    /// on disk, before <see cref="Done"/> completes.</summary>
    internal Action? Committed { get; init; }

    /// <summary>Runs when the unit could not be written and will not be retried.</summary>
    internal Action<Exception>? Failed { get; init; }

    /// <summary>Whether a failed write keeps the unit for the next write (nobody waits on it to report a failure).</summary>
    internal bool Retry { get; init; }

    /// <summary>Whether the unit confirms a publish, so its write must be synced.</summary>
    internal bool MustBeDurable { get; init; }

    /// <summary>Completes after <see cref="Committed"/>; faults with the store's failure.</summary>
    internal TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal int Count => Rows.Count + Deletes.Count + Renumbers.Count + Remember.Count;

    internal bool IsEmpty => Count == 0;
}

/// <summary>A row to insert for a message entering a stored queue; <see cref="Id"/> is given when its unit is submitted.</summary>
internal sealed class NewRow(BrokerQueue owner, QueueEntry entry, long dueTicks, byte[] envelope, bool transient)
{
    /// <summary>The queue the row belongs to.</summary>
    internal BrokerQueue Owner { get; } = owner;

    internal string Queue => Owner.Name;

    internal QueueEntry Entry { get; } = entry;

    internal long DueTicks { get; } = dueTicks;

    /// <summary>The encoded message; released (empty) once the row is written and in place, so a finished unit holds
    /// no bodies.</summary>
    internal byte[] Envelope { get; private set; } = envelope;

    internal bool Transient { get; } = transient;

    internal long Id { get; set; }

    internal StoredMessage ToStored() => new(Id, Queue, Entry.DeliveryCount, DueTicks, Envelope) { Transient = Transient };

    internal void Release() => Envelope = [];
}

/// <summary>A delayed row that became due; <see cref="NewId"/> is given when its unit is submitted. A lazy queue's
/// delayed rows have no entry in memory, only their id and size.</summary>
internal sealed class Renumbering(QueueEntry? entry, long id, int size)
{
    internal QueueEntry? Entry { get; } = entry;

    internal long Id { get; } = id;

    internal int Size { get; } = size;

    internal long NewId { get; set; }
}
