namespace MessageQueue;

/// <summary>The kind of RabbitMQ queue a MessageQueue queue is declared as.</summary>
public enum RabbitMqQueueType
{
    /// <summary>A classic queue (RabbitMQ's default): priorities, lazy mode; no delivery limit.</summary>
    Classic,

    /// <summary>A quorum queue (replicated, always durable): a delivery limit (<c>x-delivery-limit</c>); no
    /// priorities, no lazy mode, no exclusive or non-durable queues.</summary>
    Quorum,
}

/// <summary>One exchange, queue or binding to declare on the server.</summary>

/// <summary>How the RabbitMQ transport connects and declares queues (<c>UseRabbitMq</c>).</summary>
public sealed class RabbitMqOptions
{
    private readonly Dictionary<string, RabbitMqQueueType> _queueTypes = new(StringComparer.Ordinal);

    /// <summary>Gets or sets the type of the queues not named in <see cref="QueueType"/>; the default is
    /// <see cref="RabbitMqQueueType.Classic"/>.</summary>
    public RabbitMqQueueType DefaultQueueType { get; set; } = RabbitMqQueueType.Classic;

    /// <summary>Gets or sets the name the connection shows in RabbitMQ's management UI; the default is
    /// <c>MessageQueue</c>.</summary>
    public string ClientProvidedName { get; set; } = "MessageQueue";

    /// <summary>Gets or sets how long <c>Build()</c> waits for the connection; the default is 30 seconds.</summary>
    public TimeSpan ConnectionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the URL of RabbitMQ's management HTTP API (the <c>rabbitmq_management</c> plugin), for
    /// example <c>http://localhost:15672/</c>. With it, <c>GetQueueInfo</c> gives the unacked count and the
    /// published, delivered, acked and redelivered counters, and <c>GetQueueNames</c> lists every queue of the virtual
    /// host; the user is the URL's, else the AMQP URL's. The default is <see langword="null"/>: AMQP alone (ready
    /// count and consumers; the queues this broker declared).</summary>
    public string? ManagementUrl { get; set; }

    /// <summary>Gets or sets how long a publish waits for a dropped connection to come back (the client reconnects by
    /// itself, every second, and recovers channels, consumers and the topology) before it fails with a
    /// <see cref="MessageQueueException"/>; the default is 30 seconds. Any length works.</summary>
    public TimeSpan RecoveryTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets the other nodes of the server's cluster, as <c>host</c> or <c>host:port</c> (the URL's user,
    /// password and virtual host apply to them): the client connects to the first that answers, the URL's node
    /// included, and when its node fails it reconnects to another. Declare queues that must survive a node as quorum
    /// queues (<see cref="QueueType"/>): they are replicated; a classic queue lives on one node.</summary>
    public IList<string> ClusterNodes { get; } = [];

    /// <summary>Declares <paramref name="queue"/> as a queue of <paramref name="type"/> (for example a quorum queue,
    /// whose <see cref="QueueOptions.MaxDeliveryCount"/> becomes <c>x-delivery-limit</c>).</summary>
    /// <param name="queue">The queue name.</param>
    /// <param name="type">The queue type.</param>
    /// <returns>These options.</returns>
    public RabbitMqOptions QueueType(string queue, RabbitMqQueueType type)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        if (!Enum.IsDefined(type))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a RabbitMQ queue type.");
        }

        _queueTypes[queue] = type;
        return this;
    }

    /// <summary>The type <paramref name="queue"/> is declared as.</summary>
    internal RabbitMqQueueType TypeOf(string queue) => _queueTypes.TryGetValue(queue, out var type) ? type : DefaultQueueType;
}
