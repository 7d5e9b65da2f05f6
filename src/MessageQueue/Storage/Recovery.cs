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
    internal static void Run(BrokerContext context, IReadOnlyList<StoredMessage> stored)
    {
        foreach (var group in stored.GroupBy(m => m.Queue, StringComparer.Ordinal))
        {
            if (context.Topology.TryGetQueue(group.Key, out var queue) && queue.IsStored)
            {
                Restore(context, queue, group);
            }
            else
            {
                context.Orphans[group.Key] = [.. group];
                LogOrphans(context.Logger, group.Count(), group.Key);
            }
        }
    }

    /// <summary>A durable queue declared at run time takes the messages an earlier run stored for it.</summary>
    internal static void Adopt(BrokerContext context, BrokerQueue queue)
    {
        if (context.Orphans.TryRemove(queue.Name, out var rows))
        {
            Restore(context, queue, rows);
        }
    }

    private static void Restore(BrokerContext context, BrokerQueue queue, IEnumerable<StoredMessage> rows)
    {
        var serializer = context.Durable!.Serializer;
        var count = 0;
        foreach (var row in rows.OrderBy(r => r.Id))
        {
            queue.Recover(row, Envelope.Decode(row.Envelope, serializer));
            count++;
        }

        LogRecovered(context.Logger, count, queue.Name);
    }

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "The message store holds {Count} messages for queue '{Queue}', which is not declared as a durable queue; they are kept and recovered when it is")]
    private static partial void LogOrphans(ILogger logger, int count, string queue);

    [LoggerMessage(EventId = 23, Level = LogLevel.Information, Message = "Recovered {Count} messages into durable queue '{Queue}'")]
    private static partial void LogRecovered(ILogger logger, int count, string queue);
}
