using MessageQueue.Publishing;
using MessageQueue.Queues;
using MessageQueue.Routing;
using MessageQueue.Scheduling;
using MessageQueue.Storage;

namespace MessageQueue;

/// <summary>The publishing side of the broker: single publishes and sends (transactions: MessageBroker.Transactions).</summary>
internal sealed partial class MessageBroker
{
    /// <inheritdoc/>
    public IPublishTransaction BeginTransaction()
    {
        ThrowIfDisposed();
        return new PublishTransaction(this);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<PublishResult>> PublishBatchAsync<T>(string exchange, string routingKey, IEnumerable<T> messages, Func<T, PublishOptions?>? options = null, CancellationToken cancellationToken = default) =>
        Batches.PublishAsync(this, exchange, routingKey, messages, options, cancellationToken);

    private ValueTask<PublishResult> Publish(Exchange exchange, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken)
    {
        var now = _context.Clock.UtcNowTicks();
        var properties = options is null ? null : CreateProperties(options, message, now);
        var collector = RouteCollector.Rent();
        try
        {
            _context.Topology.Route(exchange, routingKey, properties, collector);
            var queues = collector.Queues;
            if (queues.Count == 0)
            {
                exchange.CountUnroutable();
                return options is { Mandatory: true }
                    ? throw new UnroutableMessageException(exchange.Name, routingKey)
                    : new ValueTask<PublishResult>(new PublishResult(properties?.MessageId ?? MessageIds.New(), 0));
            }

            var due = options is null ? 0 : DueTicks(options);
            var guarded = false;
            foreach (var queue in queues)
            {
                guarded |= queue.IsGuarded;
            }

            if (!guarded)
            {
                // Without properties, the entries make them on first read; several queues' entries share the first's.
                return new ValueTask<PublishResult>(EnqueueAll(queues, exchange, routingKey, message, properties, options, now, due));
            }

            // Admission may store the message (its row holds the properties): made now, one id for every queue.
            properties ??= queues.Count > 1 ? DefaultProperties(message, now) : null;
            return Admit(AdmissionItems(queues, exchange, routingKey, message, properties, options, now, due), properties, options is { Mandatory: true } ? exchange.Name : null, routingKey, cancellationToken);
        }
        finally
        {
            collector.Return();
        }
    }

    /// <summary>The admission items of a message routed to guarded queues, ordered by queue id.</summary>
    private static AdmissionItem[] AdmissionItems(List<BrokerQueue> queues, Exchange exchange, string routingKey, object message, MessageProperties? properties, PublishOptions? options, long now, long due)
    {
        var items = new List<AdmissionItem>(queues.Count);
        foreach (var queue in queues)
        {
            var entry = queue.NewEntry(message, properties, exchange.Name, routingKey, now, properties?.Priority ?? 0);
            items.Add(new AdmissionItem(queue, entry, due, options?.MessageId, queue.CountsBytes ? BodySize.Of(message) : 0, 0));
        }

        return Admission.Order(items);
    }

    /// <summary>Enqueues a message routed to queues without limits, deduplication or storage (lock-free).</summary>
    private static PublishResult EnqueueAll(List<BrokerQueue> queues, Exchange exchange, string routingKey, object message, MessageProperties? properties, PublishOptions? options, long now, long due)
    {
        var routed = 0;
        QueueEntry? first = null;
        QueueEntry? last = null;
        foreach (var queue in queues)
        {
            var entry = queue.NewEntry(message, properties, exchange.Name, routingKey, now, properties?.Priority ?? 0);
            if (properties is null)
            {
                if (first is null)
                {
                    first = entry;
                }
                else
                {
                    entry.ShareProperties(first);
                }
            }

            if (due == 0 ? queue.Enqueue(entry) : queue.EnqueueDelayed(entry, due))
            {
                routed++;
                last = entry;
            }
        }

        if (routed == 0 && options is { Mandatory: true })
        {
            exchange.CountUnroutable(); // its queues were deleted meanwhile
            throw new UnroutableMessageException(exchange.Name, routingKey);
        }

        return new PublishResult((object?)properties?.MessageId ?? (object?)last ?? MessageIds.New(), routed);
    }

    private ValueTask<PublishResult> Send(BrokerQueue target, object message, PublishOptions? options, CancellationToken cancellationToken)
    {
        var now = _context.Clock.UtcNowTicks();
        var properties = options is null ? null : CreateProperties(options, message, now);
        var entry = target.NewEntry(message, properties, "", target.Name, now, properties?.Priority ?? 0);
        var due = options is null ? 0 : DueTicks(options);
        if (target.IsGuarded)
        {
            AdmissionItem[] items = [new AdmissionItem(target, entry, due, options?.MessageId, target.CountsBytes ? BodySize.Of(message) : 0, 0)];
            return Admit(items, properties, mandatoryExchange: null, target.Name, cancellationToken);
        }

        if (!(due == 0 ? target.Enqueue(entry) : target.EnqueueDelayed(entry, due)))
        {
            throw QueueDeletedWhileSending(target.Name);
        }

        return new ValueTask<PublishResult>(new PublishResult((object?)properties?.MessageId ?? entry, 1));
    }

    private static TopologyException QueueDeletedWhileSending(string queue) =>
        new($"Queue '{queue}' was deleted while the message was sent; nothing was enqueued.");

    /// <summary>The locked path of one message (a queue it routes to has a length limit, a deduplication window, or
    /// is durable). A persistent message for durable queues is written to the store first.</summary>
    private ValueTask<PublishResult> Admit(AdmissionItem[] items, MessageProperties? properties, string? mandatoryExchange, string routingKey, CancellationToken cancellationToken)
    {
        if (PrepareRows(items) is { } rows)
        {
            return AdmitPersistedAsync(items, rows, properties, mandatoryExchange, routingKey, cancellationToken);
        }

        var admitted = Admission.RunAsync(items, atomic: false, cancellationToken);
        return admitted.IsCompletedSuccessfully
            ? new ValueTask<PublishResult>(Outcome(items, properties, mandatoryExchange, routingKey))
            : AdmitSlowAsync(admitted, items, properties, mandatoryExchange, routingKey);

        static async ValueTask<PublishResult> AdmitSlowAsync(ValueTask admitted, AdmissionItem[] items, MessageProperties? properties, string? mandatoryExchange, string routingKey)
        {
            await admitted.ConfigureAwait(false);
            return Outcome(items, properties, mandatoryExchange, routingKey);
        }
    }

    /// <summary>The confirm of an admitted message, or the exception that says which full queues refused it.</summary>
    private static PublishResult Outcome(AdmissionItem[] items, MessageProperties? properties, string? mandatoryExchange, string routingKey)
    {
        var routed = 0;
        var duplicates = 0;
        List<(string, string)>? rejected = null;
        var deadLettered = false;
        QueueEntry? last = null;
        foreach (var item in items)
        {
            switch (item.Verdict)
            {
                case Verdict.Enqueue:
                    routed++;
                    last = item.Entry;
                    break;
                case Verdict.Duplicate:
                    duplicates++;
                    break;
                case Verdict.Rejected or Verdict.RejectedDeadLetter:
                    (rejected ??= []).Add((item.Queue.Name, item.Limit ?? ""));
                    deadLettered |= item.Verdict == Verdict.RejectedDeadLetter;
                    break;
            }
        }

        if (rejected is not null)
        {
            var enqueued = items.Where(i => i.Verdict == Verdict.Enqueue).Select(i => i.Queue.Name).ToArray();
            throw new QueueFullException(rejected, enqueued, deadLettered, transaction: false);
        }

        if (routed == 0 && duplicates == 0)
        {
            // Every queue it routed to was deleted meanwhile.
            throw mandatoryExchange is not null
                ? new UnroutableMessageException(mandatoryExchange, routingKey)
                : QueueDeletedWhileSending(items[0].Queue.Name);
        }

        return new PublishResult((object?)properties?.MessageId ?? last ?? items[0].Entry, routed, duplicates);
    }

    /// <summary>When a delayed publish becomes ready (UTC ticks), or 0 for at once.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The delay reaches past the last representable time.</exception>
    private long DueTicks(PublishOptions options)
    {
        if (options.Delay is null && options.DeliverAt is null)
        {
            return 0;
        }

        var now = _context.Time.GetUtcNow().UtcTicks;
        long due;
        if (options.DeliverAt is { } at)
        {
            due = at.UtcTicks;
        }
        else
        {
            var delay = options.Delay!.Value;
            if (delay.Ticks > Durations.Never - now)
            {
                throw new ArgumentOutOfRangeException(nameof(options), delay,
                    "PublishOptions.Delay is too long: the message would become ready after DateTimeOffset.MaxValue. Use a shorter delay (any length up to that works).");
            }

            due = now + delay.Ticks;
        }

        return due > now ? due : 0;
    }

    private static void ValidateDelay(PublishOptions options)
    {
        if (options.Delay is not null && options.DeliverAt is not null)
        {
            throw new ArgumentException("PublishOptions sets both Delay and DeliverAt; set one.", nameof(options));
        }

        if (options.TimeToLive is { } ttl && ttl < TimeSpan.Zero && ttl != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(options), ttl, "PublishOptions.TimeToLive is negative; use zero for 'deliver now or expire', or Timeout.InfiniteTimeSpan (or TimeSpan.MaxValue) for 'never expires'.");
        }

        if (options.Delay is { } delay && delay < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), delay, "PublishOptions.Delay is negative; use DeliverAt for a point in time.");
        }
    }

    /// <summary>The properties of a message published without options (what <see cref="QueueEntry.GetProperties"/>
    /// makes on first read), for a publish whose queues must share one id.</summary>
    internal static MessageProperties DefaultProperties(object message, long nowTicks) => new()
    {
        MessageId = MessageIds.New(),
        Timestamp = new DateTimeOffset(nowTicks, TimeSpan.Zero),
        MessageType = MessageTypeNames.NameOf(message.GetType()),
    };

    internal static MessageProperties CreateProperties(PublishOptions options, object message, long nowTicks)
    {
        ValidateDelay(options);
        if (options.MessageId is { Length: 0 })
        {
            throw new ArgumentException("PublishOptions.MessageId is empty; leave it null to have one generated.", nameof(options));
        }

        return new MessageProperties
        {
            MessageId = options.MessageId ?? MessageIds.New(),
            CorrelationId = options.CorrelationId,
            ReplyTo = options.ReplyTo,
            Headers = options.Headers is { Count: > 0 } headers
                ? HeaderRules.CopyForPublish(headers, nameof(options))
                : MessageProperties.NoHeaders,
            Priority = options.Priority,
            Timestamp = new DateTimeOffset(nowTicks, TimeSpan.Zero),
            ContentType = options.ContentType,
            MessageType = MessageTypeNames.NameOf(message.GetType()),
            Persistent = options.Persistent,
            Expiration = options.TimeToLive,
        };
    }
}
