namespace MessageQueue.Routing;

/// <summary>Routes to every binding.</summary>
internal sealed class FanoutExchange(string name, ExchangeOptions options) : Exchange(name, ExchangeType.Fanout, options)
{
    private volatile Binding[] _all = [];

    internal override void Match(string routingKey, MessageProperties? properties, RouteCollector collector)
    {
        foreach (var b in _all)
        {
            collector.Add(b);
        }
    }

    protected override void Compile(Binding[] bindings) => _all = bindings;
}
