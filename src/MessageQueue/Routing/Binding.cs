using MessageQueue.Queues;

namespace MessageQueue.Routing;

/// <summary>A binding from an exchange to a queue or to another exchange.</summary>
internal sealed class Binding
{
    internal Binding(Exchange source, BrokerQueue? queue, Exchange? exchange, string routingKey, IReadOnlyDictionary<string, object?>? arguments)
    {
        Source = source;
        Queue = queue;
        Exchange = exchange;
        RoutingKey = routingKey;
        Arguments = arguments;
    }

    internal Exchange Source { get; }

    internal BrokerQueue? Queue { get; }

    internal Exchange? Exchange { get; }

    internal string DestinationName => Queue?.Name ?? Exchange!.Name;

    internal string RoutingKey { get; }

    internal IReadOnlyDictionary<string, object?>? Arguments { get; }

    internal bool SameAs(BrokerQueue? queue, Exchange? exchange, string routingKey, IReadOnlyDictionary<string, object?>? arguments) =>
        ReferenceEquals(Queue, queue) && ReferenceEquals(Exchange, exchange) && RoutingKey == routingKey
        && HeaderValues.ArgumentsEqual(Arguments, arguments);

    public override string ToString() => $"'{Source.Name}' -> {(Queue is null ? "exchange" : "queue")} '{DestinationName}' ({RoutingKey})";
}
