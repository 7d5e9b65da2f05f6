using MessageQueue.Queues;

namespace MessageQueue.Routing;

/// <summary>
/// The exchanges, queues and bindings of a broker. Changes take a lock and publish new immutable maps;
/// routing reads the current maps without locking.
/// </summary>
internal sealed class Topology
{
    private readonly Lock _sync = new();
    private readonly BrokerContext _context;
    private volatile Dictionary<string, Exchange> _exchanges = new(StringComparer.Ordinal);
    private volatile Dictionary<string, BrokerQueue> _queues = new(StringComparer.Ordinal);

    internal Topology(BrokerContext context)
    {
        _context = context;
        Default = new DefaultExchange(this);
    }

    /// <summary>The default exchange <c>""</c>: routes to the queue named by the routing key.</summary>
    internal Exchange Default { get; }

    internal IReadOnlyCollection<BrokerQueue> Queues => _queues.Values;

    /// <summary>The exchanges, the default one first.</summary>
    internal IEnumerable<Exchange> Exchanges => _exchanges.Values.Prepend(Default);

    internal bool TryGetQueue(string name, out BrokerQueue queue) => _queues.TryGetValue(name, out queue!);

    internal bool TryGetExchange(string name, out Exchange exchange)
    {
        if (name.Length == 0)
        {
            exchange = Default;
            return true;
        }

        return _exchanges.TryGetValue(name, out exchange!);
    }

    internal BrokerQueue GetQueue(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return TryGetQueue(name, out var queue)
            ? queue
            : throw new TopologyException($"Queue '{name}' does not exist; declare it with AddQueue or Management.DeclareQueueAsync.");
    }

    /// <summary>Collects the queues a message reaches from <paramref name="start"/>: each exchange visited once
    /// (so exchange-to-exchange cycles end), each queue once, alternate exchanges taken when an exchange matches nothing.</summary>
    internal void Route(Exchange start, string routingKey, MessageProperties? properties, RouteCollector collector)
    {
        var pending = collector.Pending;
        pending.Add(start);
        for (var i = 0; i < pending.Count; i++)
        {
            var exchange = pending[i];
            if (!collector.TryVisit(exchange))
            {
                continue;
            }

            collector.Matched = false;
            exchange.Match(routingKey, properties, collector);
            if (!collector.Matched && exchange.Options.AlternateExchange is { } alternate && TryGetExchange(alternate, out var ae))
            {
                pending.Add(ae);
            }
        }
    }

    // ---- declarations (each validates and throws TopologyException naming the item) ----

    internal void DeclareExchange(string name, ExchangeType type, ExchangeOptions options, bool checkReferences = true)
    {
        NameRules.ThrowIfInvalid(name, "exchange");
        lock (_sync)
        {
            if (_exchanges.TryGetValue(name, out var existing))
            {
                if (existing.Type != type || !existing.Options.IsEquivalentTo(options))
                {
                    throw new TopologyException(
                        $"Exchange '{name}' already exists as {existing.Type} with different options; delete it first or declare it the same way.");
                }

                return;
            }

            if (checkReferences && options.AlternateExchange is { } ae && ae != name && !_exchanges.ContainsKey(ae))
            {
                throw new TopologyException($"Exchange '{name}' names alternate exchange '{ae}', which does not exist; declare it first.");
            }

            _exchanges = new Dictionary<string, Exchange>(_exchanges, StringComparer.Ordinal)
            {
                [name] = Exchange.Create(name, type, options),
            };
        }
    }

    internal void DeclareQueue(string name, QueueOptions options, bool checkReferences = true)
    {
        NameRules.ThrowIfInvalid(name, "queue");
        var problems = options.Validate(name, _context.Backend).ToList();

        if (problems.Count > 0)
        {
            throw new TopologyException(problems);
        }

        lock (_sync)
        {
            if (_queues.TryGetValue(name, out var existing))
            {
                if (!existing.Options.IsEquivalentTo(options))
                {
                    throw new TopologyException(
                        $"Queue '{name}' already exists with different options; delete it first or declare it the same way.");
                }

                return;
            }

            // A dead-letter exchange (or queue) that does not exist yet is accepted at run time, as RabbitMQ accepts it:
            // applications and scripts often declare in that order. Its dead letters are dropped, counted and logged
            // once, until it exists. At Build() the whole topology is in view, so a missing one is reported there.
            var queue = new BrokerQueue(name, options, _context);
            if (checkReferences && queue.IsStored)
            {
                // Messages stored for it by an earlier run, put back before anything can be routed to it.
                Storage.Recovery.Adopt(_context, queue);
            }

            _queues = new Dictionary<string, BrokerQueue>(_queues, StringComparer.Ordinal)
            {
                [name] = queue,
            };
        }
    }

    internal void Bind(string source, string? queue, string? exchange, string routingKey, IReadOnlyDictionary<string, object?>? arguments)
    {
        ArgumentNullException.ThrowIfNull(source);
        NameRules.ThrowIfInvalidRoutingKey(routingKey, nameof(routingKey));
        lock (_sync)
        {
            var (src, q, ex) = ResolveBinding(source, queue, exchange);
            if (src.CheckBinding(routingKey, arguments) is { } problem)
            {
                throw new TopologyException(problem);
            }

            var bindings = src.Bindings;
            if (bindings.Any(b => b.SameAs(q, ex, routingKey, arguments)))
            {
                return; // binding again is a no-op, as in RabbitMQ
            }

            src.SetBindings([.. bindings, new Binding(src, q, ex, routingKey, arguments)]);
        }
    }

    internal bool Unbind(string source, string? queue, string? exchange, string routingKey, IReadOnlyDictionary<string, object?>? arguments)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(routingKey);
        lock (_sync)
        {
            var (src, q, ex) = ResolveBinding(source, queue, exchange);
            var bindings = src.Bindings;
            var kept = bindings.Where(b => !b.SameAs(q, ex, routingKey, arguments)).ToArray();
            if (kept.Length == bindings.Count)
            {
                return false;
            }

            src.SetBindings(kept);
            return true;
        }
    }

    internal bool DeleteExchange(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            throw new TopologyException("The default exchange '' cannot be deleted.");
        }

        lock (_sync)
        {
            if (!_exchanges.TryGetValue(name, out var exchange))
            {
                return false;
            }

            var remaining = new Dictionary<string, Exchange>(_exchanges, StringComparer.Ordinal);
            remaining.Remove(name);
            exchange.IsDeleted = true;
            foreach (var other in remaining.Values)
            {
                if (other.Bindings.Any(b => ReferenceEquals(b.Exchange, exchange)))
                {
                    other.SetBindings([.. other.Bindings.Where(b => !ReferenceEquals(b.Exchange, exchange))]);
                }
            }

            _exchanges = remaining;
            return true;
        }
    }

    internal bool DeleteQueue(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        BrokerQueue? queue;
        lock (_sync)
        {
            if (!_queues.TryGetValue(name, out queue))
            {
                return false;
            }

            foreach (var exchange in _exchanges.Values)
            {
                if (exchange.Bindings.Any(b => ReferenceEquals(b.Queue, queue)))
                {
                    exchange.SetBindings([.. exchange.Bindings.Where(b => !ReferenceEquals(b.Queue, queue))]);
                }
            }

            var remaining = new Dictionary<string, BrokerQueue>(_queues, StringComparer.Ordinal);
            remaining.Remove(name);
            _queues = remaining;
        }

        queue.Delete();
        _context.InFlight.Signal(); // its messages are gone: whoever waits for idle looks again
        return true;
    }

    private (Exchange Source, BrokerQueue? Queue, Exchange? Exchange) ResolveBinding(string source, string? queue, string? exchange)
    {
        if (source.Length == 0)
        {
            throw new TopologyException("The default exchange '' cannot have bindings; every queue is already bound to it by name.");
        }

        if (!_exchanges.TryGetValue(source, out var src))
        {
            throw new TopologyException($"Binding source exchange '{source}' does not exist; declare it first.");
        }

        if (queue is not null)
        {
            return _queues.TryGetValue(queue, out var q)
                ? (src, q, null)
                : throw new TopologyException($"Binding from exchange '{source}' names queue '{queue}', which does not exist; declare it first.");
        }

        if (string.IsNullOrEmpty(exchange))
        {
            throw new TopologyException($"A binding from exchange '{source}' to the default exchange is not allowed.");
        }

        return _exchanges.TryGetValue(exchange, out var dst)
            ? (src, null, dst)
            : throw new TopologyException($"Binding from exchange '{source}' names destination exchange '{exchange}', which does not exist; declare it first.");
    }

    /// <summary>The default exchange: every queue is bound to it by its name.</summary>
    private sealed class DefaultExchange(Topology topology) : Exchange("", ExchangeType.Direct, new ExchangeOptions())
    {
        internal override void Match(string routingKey, MessageProperties? properties, RouteCollector collector)
        {
            if (topology.TryGetQueue(routingKey, out var queue))
            {
                collector.Matched = true;
                collector.AddQueue(queue);
            }
        }

        protected override void Compile(Binding[] bindings)
        {
        }
    }
}
