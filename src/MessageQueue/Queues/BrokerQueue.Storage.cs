using MessageQueue.Storage;

namespace MessageQueue.Queues;

/// <summary>
/// Durable queues: persistent messages have a row in the message store from before they are admitted until they
/// leave (ack, dead-letter, expiry, purge); deliveries update the row's count lazily. On start the broker
/// recovers the rows into their queues. Lazy queues give every message a row (transient when the message should
/// not survive a restart), see <c>BrokerQueue.Lazy.cs</c>.
/// </summary>
internal sealed partial class BrokerQueue
{
    /// <summary>Encodes an entry for the store (or reuses the envelope of the same message for another queue).</summary>
    internal StoredMessage CreateRow(QueueEntry entry, long dueTicks, byte[]? envelope = null)
    {
        var log = _context.Durable!;
        envelope ??= Envelope.Encode(entry.Body, entry.GetProperties(), entry.Exchange, entry.RoutingKey, entry.TimestampTicks, log.Serializer);
        return new StoredMessage(log.NextId(), Name, entry.DeliveryCount, dueTicks, envelope)
        {
            Transient = !(Options.Durable && entry.GetProperties().Persistent),
        };
    }

    /// <summary>Queues a row for a message nobody waits on (a dead letter, a redriven message). Returns its id, or
    /// 0 when the body cannot be serialized (the message then lives in memory only, and a warning says so).</summary>
    private long Store(QueueEntry entry)
    {
        try
        {
            var row = CreateRow(entry, 0);
            _context.Durable!.Insert(row);
            return row.Id;
        }
        catch (MessageSerializationException ex)
        {
            LogNotStored(_context.Logger, Name, ex);
            return 0;
        }
    }

    /// <summary>Puts a recovered message back (before any consumer or publisher can see the queue): a delayed one
    /// keeps its due time, others join in id order. A message whose body no longer deserializes is dead-lettered
    /// with the reason.</summary>
    internal void Recover(StoredMessage row, Envelope.Decoded decoded)
    {
        var entry = EntryOf(row, decoded);
        List<DeadLetter>? dead;
        lock (_sync)
        {
            _published++;
            _storeIds![entry] = row.Id;
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

            dead = TakeDeadLetters();
        }

        SendDeadLetters(dead);
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 21, Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "A message entering durable queue '{Queue}' could not be serialized; it is kept in memory only")]
    private static partial void LogNotStored(Microsoft.Extensions.Logging.ILogger logger, string queue, Exception exception);
}
