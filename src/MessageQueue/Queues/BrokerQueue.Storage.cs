using MessageQueue.Storage;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Queues;

/// <summary>
/// Stored queues: a message that needs a row (a persistent one in a durable queue, any in a lazy one) is decided
/// first (admitted, refused, duplicate), then its row is written, then it takes its place, on the store writer's
/// thread, in row order (see <see cref="StoreUnit"/>). So nothing refused is ever written, and what is in memory
/// follows what is on disk. The row is deleted when the message leaves for good (ack, dead-letter, expiry, purge);
/// the delivery count is written when code takes a delivery. On start the broker recovers the rows into their queues.
/// </summary>
internal sealed partial class BrokerQueue
{
    private int _becomingDue;

    /// <summary>Encodes an entry's row for this queue (nothing is written yet). Throws
    /// <see cref="MessageSerializationException"/> when the body cannot be serialized.</summary>
    internal NewRow CreateRow(QueueEntry entry, long dueTicks, byte[]? envelope = null)
    {
        var log = _context.Durable!;
        envelope ??= Envelope.Encode(entry.Body, entry.GetProperties(), entry.Exchange, entry.RoutingKey, entry.TimestampTicks, log.Serializer);
        return new NewRow(this, entry, dueTicks, envelope, transient: !(Options.Durable && entry.GetProperties().Persistent));
    }

    /// <summary>
    /// Offers a message nobody waits on (a dead letter, a redriven message) to this queue. Decided under the lock,
    /// before anything is written: a full queue drops its head (<see cref="OverflowPolicy.DropHead"/>) or refuses it
    /// (the other policies; <see cref="OverflowPolicy.RejectPublishDeadLetter"/> dead-letters it on when
    /// <paramref name="deadLetterRefused"/>); deduplication does not apply. An accepted message that needs a row is
    /// added to <paramref name="handover"/> and joins when its unit is written; others join now.
    /// </summary>
    /// <param name="entry">The message, a new entry for this queue.</param>
    /// <param name="envelope">The message's encoded form, shared by the queues it is offered to (encoded on first need).</param>
    /// <param name="handover">Collects the rows to write and the joins to make when they are written.</param>
    /// <param name="deadLetterRefused">Whether a refusal under RejectPublishDeadLetter dead-letters the message.</param>
    internal OfferResult Offer(QueueEntry entry, ref byte[]? envelope, Handover handover, bool deadLetterRefused)
    {
        if (!TryMeasure(entry, out var size))
        {
            return OfferResult.Refused; // cannot be measured against MaxLengthBytes: refused like a message that does not fit
        }

        var needsRow = NeedsRow(entry.GetProperties().Persistent) && TryEncode(entry, ref envelope);
        Span<AdmissionItem> items = [new AdmissionItem(this, entry, 0, null, size, 0)];
        ref var item = ref items[0];
        using (Lock())
        {
            if (PlanAdmission(items, atomic: false, canWait: false, out _, out _) == Plan.Deleted)
            {
                return OfferResult.Deleted;
            }

            if (item.Verdict == Verdict.RejectedDeadLetter && !deadLetterRefused)
            {
                item.Verdict = Verdict.Rejected;
            }

            if (item.Verdict == Verdict.Enqueue && !needsRow && _lazy && !CanJoinWithoutRow)
            {
                item.Verdict = Verdict.Rejected; // would overtake older messages on disk
                LogLazyRefused(_context.Logger, Name, entry.GetProperties().MessageId, entry.DeliveryCount);
            }

            if (item.Verdict != Verdict.Enqueue)
            {
                ApplyRefusals(items);
                return OfferResult.Refused;
            }

            if (needsRow)
            {
                item.Row = CreateRow(entry, 0, envelope);
                Reserve(items);
                handover.Add(this, item);
                return OfferResult.Pending;
            }

            ApplyAdmission(items);
            return OfferResult.Joined;
        }
    }

    /// <summary>The body's size when the queue limits bytes (else 0). False, counted as a refusal, when it cannot be
    /// measured.</summary>
    private bool TryMeasure(QueueEntry entry, out long size)
    {
        try
        {
            size = CountsBytes ? BodySize.Of(entry.Body) : 0;
            return true;
        }
        catch (MessageQueueException)
        {
            size = 0;
            lock (_sync)
            {
                _counters.Rejected++;
            }

            Notify();
            return false;
        }
    }

    /// <summary>Encodes the message's row on first need. False when its body cannot be serialized: it is then kept in
    /// memory only (a lazy queue takes it only while nothing is on disk).</summary>
    private bool TryEncode(QueueEntry entry, ref byte[]? envelope)
    {
        if (envelope is not null)
        {
            return true;
        }

        try
        {
            envelope = Envelope.Encode(entry.Body, entry.GetProperties(), entry.Exchange, entry.RoutingKey, entry.TimestampTicks, _context.Durable!.Serializer);
            return true;
        }
        catch (MessageSerializationException ex)
        {
            LogNotStored(_context.Logger, Name, entry.GetProperties().MessageId, entry.DeliveryCount, ex);
            return false;
        }
    }

    /// <summary>An offered message's row is written: it takes its place (on the writer's thread).</summary>
    internal void CompleteOffer(AdmissionItem item)
    {
        Span<AdmissionItem> items = [item];
        using (Lock())
        {
            ApplyReserved(items);
        }
    }

    /// <summary>An offered message's row could not be written: its place is given up.</summary>
    internal void CancelOffer(AdmissionItem item)
    {
        Span<AdmissionItem> items = [item];
        lock (_sync)
        {
            CancelReserved(items);
        }

        Notify();
    }

    /// <summary>A delayed publish with a row became due (caller holds the lock): it is renumbered to the tail in the
    /// store first (so a restart finds it where it joined, not where it was published), then joins. Until then it
    /// still counts as delayed.</summary>
    private void RenumberDue(List<Renumbering> due)
    {
        if (due.Count == 0)
        {
            return;
        }

        var unit = new StoreUnit { Retry = true, Committed = () => CompleteDue(due) };
        unit.Renumbers.AddRange(due);
        if (_context.Durable!.TrySubmit(unit))
        {
            _becomingDue += due.Count;
            return;
        }

        foreach (var r in due)
        {
            if (r.Entry is null)
            {
                _limits.PromiseDueRow(r.Size, held: false); // closing: the row stays delayed on disk, and is due at the next start
            }
        }
    }

    /// <summary>Renumbered rows are written: the messages join the tail (on the writer's thread). A lazy queue's
    /// delayed rows have no body in memory: they join the disk part, to be read back in order.</summary>
    private void CompleteDue(List<Renumbering> due)
    {
        using (Lock())
        {
            _becomingDue -= due.Count;
            foreach (var r in due)
            {
                if (_deleted)
                {
                    _context.Durable!.Delete(r.NewId);
                    if (r.Entry is null)
                    {
                        _limits.PromiseDueRow(r.Size, held: false);
                    }
                }
                else if (r.Entry is { } entry)
                {
                    entry.StoreId = r.NewId;
                    AdmitDue(entry);
                }
                else
                {
                    _limits.PromiseDueRow(r.Size, held: false);
                    _disk.Spill(r.NewId, r.Size);
                }
            }

            Dispatch();
            DropHeadToLimits();
            MaybeRefill();
        }
    }

    /// <summary>Puts a recovered message back (before any consumer or publisher can see the queue): a delayed one
    /// keeps its due time, others join in id order. A message whose body no longer deserializes is dead-lettered
    /// with the reason.</summary>
    internal void Recover(StoredMessage row, Envelope.Decoded decoded)
    {
        var entry = EntryOf(row, decoded);
        using (Lock())
        {
            _counters.Published++;
            entry.StoreId = row.Id;
            if (decoded.Failure is { } failure)
            {
                Kill(entry, DeathRecord.Rejected, failure, exception: null);
            }
            else if (row.DueTicks > 0)
            {
                AddDelayed(entry, row.DueTicks);
            }
            else
            {
                JoinTail(entry);
            }
        }
    }

    /// <summary>Records that code took a delivery of a stored message: the store's count is what code saw, so a
    /// message that only waited in a prefetch window does not spend a delivery when the broker restarts.</summary>
    internal void RecordDelivery(QueueEntry entry, int deliveryCount)
    {
        if (entry.StoreId is var id and > 0)
        {
            _context.Durable!.Delivered(id, deliveryCount);
        }
    }

    [LoggerMessage(EventId = 21, EventName = "SerializationFailedKeptInMemory", Level = LogLevel.Warning, Message = "Message {MessageId} (delivery {DeliveryCount}) entering durable queue '{Queue}' could not be serialized; it is kept in memory only")]
    private static partial void LogNotStored(ILogger logger, string queue, string messageId, int deliveryCount, Exception exception);

    [LoggerMessage(EventId = 31, EventName = "SerializationFailedRefused", Level = LogLevel.Warning, Message = "Message {MessageId} (delivery {DeliveryCount}) could not be serialized and was refused by lazy queue '{Queue}': older messages are on disk, and it cannot join behind them without a row")]
    private static partial void LogLazyRefused(ILogger logger, string queue, string messageId, int deliveryCount);
}

/// <summary>What became of a message offered to a queue.</summary>
internal enum OfferResult
{
    /// <summary>It joined the queue.</summary>
    Joined,

    /// <summary>It joins when its row is written.</summary>
    Pending,

    /// <summary>The queue refused it (full, or it cannot be measured).</summary>
    Refused,

    /// <summary>The queue was deleted.</summary>
    Deleted,
}

/// <summary>
/// Messages offered to stored queues by one sender (the dead letters of one batch, a redrive): their rows and the
/// deletes that go with them (the rows they leave) in one <see cref="StoreUnit"/>, and the joins to make when it is
/// written.
/// </summary>
internal sealed class Handover
{
    private readonly List<(BrokerQueue Queue, AdmissionItem Item)> _joins = [];

    internal Handover(bool retry, Action<Exception>? failed = null, bool mustBeDurable = false)
    {
        Unit = new StoreUnit
        {
            Retry = retry,
            MustBeDurable = mustBeDurable,
            Committed = Commit,
            Failed = ex =>
            {
                foreach (var (queue, item) in _joins)
                {
                    queue.CancelOffer(item);
                }

                failed?.Invoke(ex);
            },
        };
    }

    internal StoreUnit Unit { get; }

    /// <summary>How many offers wait for the unit.</summary>
    internal int Pending => _joins.Count;

    internal void Add(BrokerQueue queue, AdmissionItem item)
    {
        _joins.Add((queue, item));
        Unit.Rows.Add(item.Row!);
    }

    private void Commit()
    {
        foreach (var (queue, item) in _joins)
        {
            queue.CompleteOffer(item);
        }
    }
}
