using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Builds a <see cref="RabbitMqBroker"/> from a builder's validated topology: connects, declares every exchange,
/// queue and binding idempotently (a conflict with what the server has is a <see cref="TopologyException"/> naming the
/// item and both settings), and refuses at validation, all at once, the queue options RabbitMQ cannot honour.
/// </summary>
internal sealed class RabbitMqTransport(Uri uri, RabbitMqOptions options) : IBrokerTransport
{
    public Backend Backend => BackendFor(options);

    /// <summary>The backend whose refusals are the RabbitMQ transport's.</summary>
    internal static Backend BackendFor(RabbitMqOptions options) =>
        MessageQueue.Backend.Transport("RabbitMQ transport", (queue, o) => RabbitMqTopology.Refusals(new QueueItem(queue, o, options.TypeOf(queue))));

    /// <summary>A cluster node given as <c>host</c> or <c>host:port</c> (the URL's port by default, TLS as the URL).</summary>
    /// <exception cref="ArgumentException">It is not a host, or a host and a port.</exception>
    internal static AmqpTcpEndpoint Endpoint(string node, Uri uri)
    {
        var port = uri.IsDefaultPort ? (uri.Scheme == "amqps" ? 5671 : 5672) : uri.Port;
        if (string.IsNullOrWhiteSpace(node) || !Uri.TryCreate($"{uri.Scheme}://{node}", UriKind.Absolute, out var parsed) || parsed.AbsolutePath != "/" || parsed.UserInfo.Length > 0)
        {
            throw new ArgumentException($"RabbitMqOptions.ClusterNodes has '{node}', which is not a host or host:port (for example rabbit2 or rabbit2:5672).", nameof(node));
        }

        return new AmqpTcpEndpoint(parsed.Host, parsed.IsDefaultPort ? port : parsed.Port, uri.Scheme == "amqps" ? new SslOption(parsed.Host, enabled: true) : new SslOption());
    }

    /// <summary>The server, without the user's password: for messages.</summary>
    internal static string Describe(Uri uri) => $"{uri.Scheme}://{uri.Host}:{(uri.IsDefaultPort ? 5672 : uri.Port)}{uri.AbsolutePath}";

    public IMessageBroker Build(MessageBrokerBuilder builder)
    {
        var items = new List<TopologyItem>();
        var queues = new List<QueueItem>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, type, exchangeOptions) in builder.DeclaredExchanges)
        {
            if (seen.Add("e:" + name))
            {
                items.Add(new ExchangeItem(name, type, exchangeOptions.Clone()));
            }
        }

        foreach (var (name, queueOptions) in builder.DeclaredQueues)
        {
            if (seen.Add("q:" + name))
            {
                var queue = new QueueItem(name, queueOptions.Clone(), options.TypeOf(name));
                queues.Add(queue);
                items.Add(queue);
            }
        }

        foreach (var (source, destination, toExchange, routingKey, arguments) in builder.DeclaredBindings)
        {
            items.Add(new BindingItem(source, destination, toExchange, routingKey, arguments));
        }

        var connection = Connect();
        try
        {
            RabbitMqTopology.DeclareAsync(connection, items).GetAwaiter().GetResult();
            var broker = new RabbitMqBroker(connection, options, queues, builder.Serializer, builder.Time, builder.LoggerFactory, builder.ShutdownTimeout, builder.MeterFactory, builder.BrokerName)
            {
                Server = Describe(uri),
                HttpApi = options.ManagementUrl is { } api ? new RabbitMqHttpApi(new Uri(api), uri, options.ConnectionTimeout) : null,
            };
            broker.Delays.StartIfDeclaredAsync().GetAwaiter().GetResult(); // forward what earlier runs delayed to exchanges
            return broker;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private IConnection Connect() => ConnectAsync(uri, options, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Connects to the server at <paramref name="uri"/> (and the cluster's other nodes) with automatic
    /// recovery: the client reconnects every second when the connection drops.</summary>
    /// <exception cref="MessageQueueException">No node answered.</exception>
    internal static async Task<IConnection> ConnectAsync(Uri uri, RabbitMqOptions options, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            Uri = uri,
            ClientProvidedName = options.ClientProvidedName,
            RequestedConnectionTimeout = TimeSpan.FromMilliseconds(Math.Min(options.ConnectionTimeout.TotalMilliseconds, int.MaxValue)), // the client's timer takes no more
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
        };
        try
        {
            // The URL's node first, then the cluster's others: the client takes the first that answers, and its
            // recovery goes through the same list when a node fails.
            var endpoints = new List<AmqpTcpEndpoint> { factory.Endpoint };
            endpoints.AddRange(options.ClusterNodes.Select(n => Endpoint(n, uri)));
            return await factory.CreateConnectionAsync(endpoints, cancellationToken).ConfigureAwait(false);
        }
        catch (global::RabbitMQ.Client.Exceptions.BrokerUnreachableException ex)
        {
            throw new MessageQueueException($"Cannot connect to the RabbitMQ server at {Describe(uri)}: {ex.InnerException?.Message ?? ex.Message}", ex);
        }
    }
}
