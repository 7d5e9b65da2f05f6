using MessageQueue.Publishing;
using MessageQueue.Queues;
using MessageQueue.Routing;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue;

/// <summary>The transactional side of publishing: staging messages, then routing and admitting them all at once, or
/// none (transactions and batches).</summary>
internal sealed partial class MessageBroker
{
    /// <summary>Routes a transaction's staged messages and admits them all at once, or none.</summary>
    internal async ValueTask<IReadOnlyList<PublishResult>> CommitAsync(IReadOnlyList<StagedMessage> staged, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var items = RouteStaged(staged);
        var ordered = Admission.Order(items);
        if (PrepareRows(ordered) is not null)
        {
            await AdmitStoredAsync(ordered, atomic: true, cancellationToken).ConfigureAwait(false); // one store transaction for the whole commit
        }
        else
        {
            await Admission.RunAsync(ordered, atomic: true, cancellationToken).ConfigureAwait(false);
        }

        var results = Results(staged, ordered);
        if (_context.Observer is { } observer)
        {
            for (var i = 0; i < staged.Count; i++)
            {
                var message = staged[i];
                observer.Published(message.Queue is null ? message.Exchange : "", message.Queue ?? message.RoutingKey, message.Body, results[i].MessageId, results[i].RoutedQueues);
            }
        }

        return results;
    }

    /// <summary>Routes a transaction's staged messages: one admission item per queue each reaches. Throws when an
    /// exchange was deleted or a mandatory message is unroutable: nothing is enqueued then.</summary>
    private List<AdmissionItem> RouteStaged(IReadOnlyList<StagedMessage> staged)
    {
        var now = _context.Clock.UtcNowTicks();
        var items = new List<AdmissionItem>(staged.Count);
        var collector = RouteCollector.Rent();
        try
        {
            for (var i = 0; i < staged.Count; i++)
            {
                var message = staged[i];
                RouteOne(message, collector);
                var due = message.Options is null ? 0 : DueTicks(message.Options);
                foreach (var queue in collector.Queues)
                {
                    var entry = queue.NewEntry(message.Body, message.Properties, message.Exchange, message.RoutingKey, now, message.Properties.Priority);
                    items.Add(new AdmissionItem(queue, entry, due, message.Options?.MessageId, queue.CountsBytes ? BodySize.Of(message.Body) : 0, i));
                }
            }
        }
        finally
        {
            collector.Return();
        }

        return items;
    }

    private void RouteOne(StagedMessage message, RouteCollector collector)
    {
        collector.Clear();
        if (message.Queue is { } queueName)
        {
            collector.AddQueue(_context.Topology.GetQueue(queueName));
            return;
        }

        if (!_context.Topology.TryGetExchange(message.Exchange, out var exchange))
        {
            throw new TopologyException($"Exchange '{message.Exchange}' was deleted before the transaction committed; nothing was enqueued.");
        }

        _context.Topology.Route(exchange, message.RoutingKey, message.Properties, collector);
        if (collector.Queues.Count == 0)
        {
            exchange.CountUnroutable();
            if (message.Options?.Mandatory == true)
            {
                throw new UnroutableMessageException(message.Exchange, message.RoutingKey);
            }
        }
    }

    /// <summary>Each staged message's result: how many queues took it, how many found it a duplicate.</summary>
    private static PublishResult[] Results(IReadOnlyList<StagedMessage> staged, AdmissionItem[] ordered)
    {
        var routed = new int[staged.Count];
        var duplicates = new int[staged.Count];
        foreach (var item in ordered)
        {
            routed[item.Message] += item.Verdict == Verdict.Enqueue ? 1 : 0;
            duplicates[item.Message] += item.Verdict == Verdict.Duplicate ? 1 : 0;
        }

        var results = new PublishResult[staged.Count];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = new PublishResult(staged[i].Properties.MessageId, routed[i], duplicates[i]);
        }

        return results;
    }

    /// <summary>Checks a message for a transaction and makes its properties (the id is fixed when staged).</summary>
    internal StagedMessage Stage(string? exchange, string? queue, string routingKey, object message, PublishOptions? options)
    {
        ThrowIfDisposed();
        if (exchange is not null && !_context.Topology.TryGetExchange(exchange, out _))
        {
            throw new TopologyException($"Exchange '{exchange}' does not exist; declare it with AddExchange or Management.DeclareExchangeAsync.");
        }

        if (queue is not null)
        {
            _ = _context.Topology.GetQueue(queue);
        }

        _context.Metrics.CountSent(exchange ?? queue ?? "", exchange is null ? "send" : "publish");
        if (System.Diagnostics.Activity.Current is { } current && Diagnostics.BrokerTracing.Source.HasListeners())
        {
            options = Diagnostics.BrokerTracing.WithContext(options, current); // staged messages carry the stager's context
        }

        var properties = CreateProperties(options ?? new PublishOptions(), message, _context.Clock.UtcNowTicks());
        return new StagedMessage(exchange ?? "", queue, routingKey, message, properties, options);
    }
}
