using System.Diagnostics;

namespace MessageQueue.Routing;

/// <summary>
/// An exchange: a name, a type and a set of bindings. Bindings change under the topology lock by
/// swapping in a freshly compiled matcher, so routing reads without locks.
/// </summary>
[DebuggerDisplay("{Type} exchange '{Name}'")]
internal abstract class Exchange
{
    private volatile Binding[] _bindings = [];
    private long _unroutable;

    protected Exchange(string name, ExchangeType type, ExchangeOptions options)
    {
        Name = name;
        Type = type;
        Options = options;
    }

    internal string Name { get; }

    /// <summary>How many publishes to this exchange reached no queue (for metrics).</summary>
    internal long UnroutableCount => Interlocked.Read(ref _unroutable);

    internal void CountUnroutable() => Interlocked.Increment(ref _unroutable);

    internal ExchangeType Type { get; }

    internal ExchangeOptions Options { get; }

    internal IReadOnlyList<Binding> Bindings => _bindings;

    internal bool IsDeleted { get; set; }

    internal static Exchange Create(string name, ExchangeType type, ExchangeOptions options) => type switch
    {
        ExchangeType.Direct => new DirectExchange(name, options),
        ExchangeType.Fanout => new FanoutExchange(name, options),
        ExchangeType.Topic => new TopicExchange(name, options),
        ExchangeType.Headers => new HeadersExchange(name, options),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, $"Unknown exchange type {type}."),
    };

    /// <summary>Checks a binding's key and arguments for this exchange type; returns the problem or null.</summary>
    internal virtual string? CheckBinding(string routingKey, IReadOnlyDictionary<string, object?>? arguments) => null;

    /// <summary>Replaces the bindings (caller holds the topology lock).</summary>
    internal void SetBindings(Binding[] bindings)
    {
        Compile(bindings);
        _bindings = bindings;
    }

    /// <summary>Adds every matching binding's destination to the collector.</summary>
    internal abstract void Match(string routingKey, MessageProperties? properties, RouteCollector collector);

    protected abstract void Compile(Binding[] bindings);
}
