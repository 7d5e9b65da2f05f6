using MessageQueue.Publishing;
using MessageQueue.Routing;

namespace MessageQueue.Queues;

/// <summary>
/// Sends dead letters on, as RabbitMQ does: through the queue's dead-letter exchange with its dead-letter
/// routing key (or the message's own), recording the death in <see cref="MessageProperties.Deaths"/> and
/// the <c>x-first-death-*</c> / <c>x-last-death-*</c> headers, and dropping a message that would come back to
/// a queue it already died in with no rejection on the way (the cycle guard).
/// </summary>
internal sealed class DeadLetterRouter(BrokerContext context)
{
    private const int MaxStackLength = 8192;

    /// <summary>Sends the dead letters of one queue on. Targets that store messages get them through one unit: their
    /// rows are inserted and the dead letters' rows in <paramref name="source"/> deleted in one transaction, so a
    /// crash leaves each in one place, never in neither or both. Other targets get them at once, and the source's rows
    /// are deleted after.</summary>
    internal void Send(BrokerQueue source, List<DeadLetter> deadLetters)
    {
        var handover = new Handover(retry: true);
        foreach (var dead in deadLetters)
        {
            var pendingBefore = handover.Pending;
            source.CountDeadLettered(Send(source, dead, handover), dead.Reason);
            if (dead.StoreId > 0)
            {
                if (handover.Pending > pendingBefore)
                {
                    handover.Unit.Deletes.Add(dead.StoreId); // with its rows in its stored targets
                }
                else
                {
                    context.Durable!.Delete(dead.StoreId);
                }
            }
        }

        if (!handover.Unit.IsEmpty && !context.Durable!.TrySubmit(handover.Unit))
        {
            // The broker is closing: nothing more is written. The dead letters' rows stay where they died, and
            // come back there at the next start.
            handover.Unit.Failed!(new ObjectDisposedException(nameof(MessageBroker)));
        }
    }

    private bool Send(BrokerQueue source, DeadLetter dead, Handover handover)
    {
        if (Target(source, dead) is not var (exchange, routingKey))
        {
            return false;
        }

        var exchangeName = exchange.Name;
        var topology = context.Topology;
        var now = context.Time.GetUtcNow();
        var properties = Record(source, dead, now);
        var collector = RouteCollector.Rent();
        try
        {
            topology.Route(exchange, routingKey, properties, collector);
            var routed = false;
            byte[]? envelope = null;
            foreach (var queue in collector.Queues)
            {
                if (dead.Reason != DeathRecord.Rejected && IsCycle(queue.Name, properties.Deaths))
                {
                    continue;
                }

                var entry = queue.NewEntry(dead.Entry.Body, properties, exchangeName, routingKey, now.UtcTicks, dead.Entry.Priority);
                routed |= queue.NeedsOffer
                    ? queue.Offer(entry, ref envelope, handover, deadLetterRefused: true) is OfferResult.Joined or OfferResult.Pending
                    : queue.Enqueue(entry);
            }

            return routed;
        }
        finally
        {
            collector.Return();
        }
    }

    /// <summary>Where the source queue sends its dead letters: its dead-letter queue (through the default exchange) or
    /// its dead-letter exchange, with the routing key. Null when it has none, or when it is gone (warned once).</summary>
    private (Exchange Exchange, string RoutingKey)? Target(BrokerQueue source, DeadLetter dead)
    {
        var options = source.Options;
        string exchangeName;
        string routingKey;
        if (options.DeadLetterQueue is { } dlq)
        {
            exchangeName = "";
            routingKey = dlq;
        }
        else if (options.DeadLetterExchange is { } dlx)
        {
            exchangeName = dlx;
            routingKey = options.DeadLetterRoutingKey ?? dead.Entry.RoutingKey;
        }
        else
        {
            return null;
        }

        var topology = context.Topology;
        if (!topology.TryGetExchange(exchangeName, out var exchange))
        {
            source.WarnDeadLetterTargetMissing($"dead-letter exchange '{exchangeName}'");
            return null;
        }

        if (options.DeadLetterQueue is { } target && !topology.TryGetQueue(target, out _))
        {
            source.WarnDeadLetterTargetMissing($"dead-letter queue '{target}'");
            return null;
        }

        return (exchange, routingKey);
    }

    /// <summary>RabbitMQ's rule: the message already died in <paramref name="queue"/>, and every death since
    /// (that one included) was automatic (not a rejection).</summary>
    private static bool IsCycle(string queue, IReadOnlyList<DeathRecord> deaths)
    {
        for (var i = 0; i < deaths.Count; i++)
        {
            if (deaths[i].Reason == DeathRecord.Rejected)
            {
                return false;
            }

            if (deaths[i].Queue == queue)
            {
                return true;
            }
        }

        return false;
    }

    private static MessageProperties Record(BrokerQueue source, DeadLetter dead, DateTimeOffset now) =>
        Record(dead.Entry.GetProperties(), source.Name, dead.Reason, dead.Entry.Exchange, dead.Entry.RoutingKey, dead.Detail, dead.Exception, now);

    /// <summary>The properties of a message that dies in <paramref name="queue"/>, as RabbitMQ records a death: the
    /// <c>x-death</c> entry for this queue and reason counted up (or a new one in front), the <c>x-first-death-*</c>
    /// headers kept, <c>x-last-death-*</c> set, the rejection reason and exception (of this death only), and no
    /// expiration. The RabbitMQ transport dead-letters with the same record where it does so itself.</summary>
    internal static MessageProperties Record(MessageProperties old, string queue, string reason, string exchange, string routingKey, string? detail, Exception? exception, DateTimeOffset now)
    {
        var deaths = new List<DeathRecord>(old.Deaths.Count + 1);
        DeathRecord? previous = null;
        foreach (var d in old.Deaths)
        {
            if (previous is null && d.Queue == queue && d.Reason == reason)
            {
                previous = d;
            }
            else
            {
                deaths.Add(d);
            }
        }

        var record = previous is null
            ? new DeathRecord(queue, reason, 1, now, exchange, [routingKey]) { OriginalExpiration = old.Expiration }
            : new DeathRecord(previous.Queue, previous.Reason, previous.Count + 1, previous.Time, previous.Exchange, previous.RoutingKeys)
            {
                OriginalExpiration = old.Expiration ?? previous.OriginalExpiration,
            };
        deaths.Insert(0, record);

        var headers = new Dictionary<string, object?>(old.Headers.Count + 8, StringComparer.Ordinal);
        foreach (var (key, value) in old.Headers)
        {
            // Exception and rejection details describe the last death only.
            if (!key.StartsWith("x-exception-", StringComparison.Ordinal) && key != HeaderRules.RejectionReason)
            {
                headers[key] = value;
            }
        }

        headers.TryAdd(HeaderRules.FirstDeathQueue, queue);
        headers.TryAdd(HeaderRules.FirstDeathReason, reason);
        headers.TryAdd(HeaderRules.FirstDeathExchange, exchange);
        headers[HeaderRules.LastDeathQueue] = queue;
        headers[HeaderRules.LastDeathReason] = reason;
        headers[HeaderRules.LastDeathExchange] = exchange;
        if (detail is not null)
        {
            headers[HeaderRules.RejectionReason] = detail;
        }

        if (exception is { } ex)
        {
            headers[HeaderRules.ExceptionType] = ex.GetType().FullName;
            headers[HeaderRules.ExceptionMessage] = ex.Message;
            var stack = ex.StackTrace ?? "";
            headers[HeaderRules.ExceptionStack] = stack.Length > MaxStackLength ? stack[..MaxStackLength] : stack;
        }

        return old.With(headers, deaths);
    }
}
