using MessageQueue.Queues;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Storage;

/// <summary>
/// Puts stored messages back into their durable queues when the broker starts: ready ones in their order,
/// unacked ones back as ready (their next delivery is a redelivery with the count they had), delayed ones with
/// their due time, dead letters with their history. Messages of a queue the code no longer declares as durable
/// are kept in the store, never deleted, and a warning names the queue; they are recovered if it is declared
/// durable again (at run time too).
/// </summary>
internal static partial class Recovery
{
    internal static void Run(BrokerContext context, StoreContents stored)
    {
        foreach (var group in stored.Remembered.GroupBy(r => r.Queue, StringComparer.Ordinal))
        {
            context.OrphanIds[group.Key] = [.. group];
        }

        foreach (var (name, count) in stored.Queues)
        {
            context.Orphans[name] = count;
        }

        foreach (var queue in context.Topology.Queues)
        {
            Adopt(context, queue);
        }

        foreach (var (name, count) in context.Orphans)
        {
            LogOrphans(context.Logger, count, name);
        }
    }

    /// <summary>A durable or lazy queue (declared at start or at run time) takes the messages, and the
    /// deduplication ids, an earlier run stored for it.</summary>
    internal static void Adopt(BrokerContext context, BrokerQueue queue)
    {
        if (!queue.IsStored)
        {
            return;
        }

        if (context.OrphanIds.TryRemove(queue.Name, out var ids))
        {
            queue.RestoreRememberedIds(ids);
        }

        if (context.Orphans.TryRemove(queue.Name, out _))
        {
            Restore(context, queue);
        }
    }

    /// <summary>Reads a queue's rows in id order: a lazy queue keeps its ready backlog on disk (only ids and sizes
    /// in memory) and reads delayed ones; other queues read everything.</summary>
    private static void Restore(BrokerContext context, BrokerQueue queue)
    {
        var log = context.Durable!;
        var count = 0;
        if (queue.IsLazy)
        {
            // Ready rows stay on disk (only their count and size are kept); delayed ones keep their id, size and due time.
            queue.PrepareRecovery();
            foreach (var row in Guarded(log.Store, queue.Name, () => log.Store.ReadQueue(queue.Name, withEnvelopes: false)))
            {
                count++;
                if (row.DueTicks > 0)
                {
                    queue.RecoverDelayedRow(row);
                }
                else
                {
                    queue.RecoverSpilled(row);
                }
            }

            queue.AfterRecovery();
        }
        else
        {
            foreach (var row in Guarded(log.Store, queue.Name, () => log.Store.ReadQueue(queue.Name, withEnvelopes: true)))
            {
                queue.Recover(row, Envelope.Decode(row, log.Store, log.Serializer));
                count++;
            }
        }

        LogRecovered(context.Logger, count, queue.Name);
    }

    /// <summary>Reads from the store, turning whatever else a store throws while reading (an I/O error, a value of
    /// the wrong type) into a <see cref="MessageStoreException"/> that names the store and the queue. Only the
    /// store's own calls are guarded, never what the caller does with each row.</summary>
    private static IEnumerable<StoredMessage> Guarded(IMessageStore store, string queue, Func<IEnumerable<StoredMessage>> read)
    {
        IEnumerator<StoredMessage> rows;
        try
        {
            rows = read().GetEnumerator();
        }
        catch (Exception ex) when (IsReadFailure(ex))
        {
            throw ReadFailed(store, queue, ex);
        }

        using (rows)
        {
            while (true)
            {
                bool more;
                try
                {
                    more = rows.MoveNext();
                }
                catch (Exception ex) when (IsReadFailure(ex))
                {
                    throw ReadFailed(store, queue, ex);
                }

                if (!more)
                {
                    yield break;
                }

                yield return rows.Current;
            }
        }
    }

    private static bool IsReadFailure(Exception ex) => ex is not (MessageStoreException or OutOfMemoryException or OperationCanceledException);

    private static MessageStoreException ReadFailed(IMessageStore store, string queue, Exception ex) =>
        new($"Reading the messages of queue '{queue}' from the {Envelope.Describe(store)} failed: {ex.Message}", ex);

    [LoggerMessage(EventId = 22, EventName = "StoredQueueNotDeclared", Level = LogLevel.Warning, Message = "The message store holds {Count} messages for queue '{Queue}', which is not declared as a durable queue; they are kept and recovered when it is")]
    private static partial void LogOrphans(ILogger logger, int count, string queue);

    [LoggerMessage(EventId = 23, EventName = "QueueRecovered", Level = LogLevel.Information, Message = "Recovered {Count} messages into durable queue '{Queue}'")]
    private static partial void LogRecovered(ILogger logger, int count, string queue);
}
