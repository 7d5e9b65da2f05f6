namespace MessageQueue.Routing;

/// <summary>Routes by topic pattern, through a trie of binding words (as RabbitMQ does), so the cost of a
/// publish grows with the routing key's words, not with the number of bindings.</summary>
internal sealed class TopicExchange(string name, ExchangeOptions options) : Exchange(name, ExchangeType.Topic, options)
{
    private volatile TopicTrie _trie = new([]);

    internal override void Match(string routingKey, MessageProperties? properties, RouteCollector collector) =>
        _trie.Match(routingKey, collector);

    protected override void Compile(Binding[] bindings) => _trie = new TopicTrie(bindings);
}
