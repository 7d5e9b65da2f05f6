using MessageQueue.Queues;

namespace MessageQueue.Routing;

/// <summary>
/// Collects the queues one publish reaches, each once, and the exchanges still to visit, each once.
/// Reused per thread so routing does not allocate.
/// </summary>
internal sealed class RouteCollector
{
    [ThreadStatic]
    private static RouteCollector? t_cached;

    private readonly HashSet<BrokerQueue> _queueSet = [];
    private readonly HashSet<Exchange> _visitedSet = [];

    internal List<BrokerQueue> Queues { get; } = [];

    internal List<Exchange> Pending { get; } = [];

    /// <summary>Set by an exchange's match when at least one binding matched.</summary>
    internal bool Matched { get; set; }

    internal static RouteCollector Rent()
    {
        var c = t_cached;
        if (c is null)
        {
            return new RouteCollector();
        }

        t_cached = null;
        return c;
    }

    internal void Return()
    {
        Clear();
        t_cached = this;
    }

    internal void Clear()
    {
        Queues.Clear();
        Pending.Clear();
        _queueSet.Clear();
        _visitedSet.Clear();
        Matched = false;
    }

    internal void Add(Binding binding)
    {
        Matched = true;
        if (binding.Queue is { } queue)
        {
            AddQueue(queue);
        }
        else
        {
            Pending.Add(binding.Exchange!);
        }
    }

    internal void AddQueue(BrokerQueue queue)
    {
        if (_queueSet.Add(queue))
        {
            Queues.Add(queue);
        }
    }

    internal bool TryVisit(Exchange exchange) => _visitedSet.Add(exchange);
}
