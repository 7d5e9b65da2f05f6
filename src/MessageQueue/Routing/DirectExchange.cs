namespace MessageQueue.Routing;

/// <summary>Routes to bindings whose key equals the routing key.</summary>
internal sealed class DirectExchange(string name, ExchangeOptions options) : Exchange(name, ExchangeType.Direct, options)
{
    private volatile Dictionary<string, Binding[]> _byKey = new(StringComparer.Ordinal);

    internal override void Match(string routingKey, MessageProperties? properties, RouteCollector collector)
    {
        if (_byKey.TryGetValue(routingKey, out var bindings))
        {
            foreach (var b in bindings)
            {
                collector.Add(b);
            }
        }
    }

    protected override void Compile(Binding[] bindings) =>
        _byKey = bindings.GroupBy(b => b.RoutingKey, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
}
