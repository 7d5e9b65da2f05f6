using Microsoft.Extensions.Logging;

namespace MessageQueue;

/// <summary>What a transport (<see cref="IBrokerTransport"/>) reads of the builder.</summary>
public sealed partial class MessageBrokerBuilder
{
    /// <summary>Gets or sets the transport that <see cref="Build"/> hands the validated topology to (null: the
    /// in-process broker).</summary>
    internal IBrokerTransport? Transport { get; set; }

    /// <summary>Gets the declared exchanges (for a transport; valid after <see cref="Build"/> validated them).</summary>
    internal IReadOnlyList<(string Name, ExchangeType Type, ExchangeOptions Options)> DeclaredExchanges => _exchanges;

    /// <summary>Gets the declared queues (for a transport).</summary>
    internal IReadOnlyList<(string Name, QueueOptions Options)> DeclaredQueues => _queues;

    /// <summary>Gets the declared bindings (for a transport).</summary>
    internal IReadOnlyList<(string Source, string Destination, bool ToExchange, string RoutingKey, IReadOnlyDictionary<string, object?>? Arguments)> DeclaredBindings => _bindings;

    internal IMessageSerializer Serializer => _serializer;

    internal ILoggerFactory LoggerFactory => _loggerFactory;

    internal TimeProvider Time => _time;

    internal TimeSpan ShutdownTimeout => _shutdownTimeout;

    internal System.Diagnostics.Metrics.IMeterFactory? MeterFactory => _meterFactory;

    /// <summary>Validates the topology, with the transport's refusals, and lets the transport build the broker.</summary>
    private IMessageBroker BuildWithTransport(IBrokerTransport transport)
    {
        var problems = Validate();
        if (_store is not null)
        {
            problems.Add("The broker has both a transport (UseRabbitMq) and a message store (UseSqlite, UseLiteDb or UseStore); the transport's server keeps durable queues, so remove the store.");
        }

        return problems.Count > 0 ? throw new TopologyException(problems) : transport.Build(this);
    }
}
