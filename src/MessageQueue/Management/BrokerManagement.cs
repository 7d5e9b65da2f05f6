using MessageQueue.Queues;

namespace MessageQueue.Management;

/// <summary>Runtime management over a broker's topology and queues.</summary>
internal sealed class BrokerManagement(BrokerContext context, MessageBroker broker) : IBrokerManagement
{
    private Routing.Topology Topology => context.Topology;

    public ValueTask DeclareExchangeAsync(string name, ExchangeType type, Action<ExchangeOptions>? configure = null, CancellationToken cancellationToken = default) =>
        Run(() =>
        {
            var options = new ExchangeOptions();
            configure?.Invoke(options);
            Topology.DeclareExchange(name, type, options);
        }, cancellationToken);

    public ValueTask<bool> DeleteExchangeAsync(string name, CancellationToken cancellationToken = default) =>
        Run(() => Topology.DeleteExchange(name), cancellationToken);

    public ValueTask DeclareQueueAsync(string name, Action<QueueOptions>? configure = null, CancellationToken cancellationToken = default) =>
        Run(() =>
        {
            var options = new QueueOptions();
            configure?.Invoke(options);
            Topology.DeclareQueue(name, options);
        }, cancellationToken);

    public ValueTask<bool> DeleteQueueAsync(string name, CancellationToken cancellationToken = default) =>
        Run(() => Topology.DeleteQueue(name), cancellationToken);

    public ValueTask BindAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Bind(exchange, queue ?? throw new ArgumentNullException(nameof(queue)), null, routingKey, arguments), cancellationToken);

    public ValueTask<bool> UnbindAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Unbind(exchange, queue ?? throw new ArgumentNullException(nameof(queue)), null, routingKey, arguments), cancellationToken);

    public ValueTask BindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Bind(source, null, destination ?? throw new ArgumentNullException(nameof(destination)), routingKey, arguments), cancellationToken);

    public ValueTask<bool> UnbindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Unbind(source, null, destination ?? throw new ArgumentNullException(nameof(destination)), routingKey, arguments), cancellationToken);

    public QueueInfo GetQueueInfo(string queue) => Topology.GetQueue(queue).GetInfo();

    public IReadOnlyList<string> GetQueueNames() => [.. Topology.Queues.Select(q => q.Name).Order(StringComparer.Ordinal)];

    public ValueTask<int> PurgeAsync(string queue, CancellationToken cancellationToken = default) =>
        Run(() => Topology.GetQueue(queue).Purge(), cancellationToken);

    public ValueTask<IReadOnlyList<PeekedMessage>> PeekAsync(string queue, int maxMessages = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        return ReadOnly(() => (IReadOnlyList<PeekedMessage>)[.. Topology.GetQueue(queue).Peek(maxMessages)
            .Select(e => new PeekedMessage(e.Body, e.GetProperties(), e.Exchange, e.RoutingKey, e.DeliveryCount))], cancellationToken);
    }

    public ValueTask<int> RedriveAsync(string deadLetterQueue, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        return Run(() =>
        {
            var source = Topology.GetQueue(deadLetterQueue);
            var taken = source.TakeReady(e => Origin(e) is { } origin && origin != source && !origin.IsDeleted, maxMessages);
            var moved = 0;
            foreach (var entry in taken)
            {
                var origin = Origin(entry)!;
                var now = context.Time.GetUtcNow().UtcTicks;
                var copy = new QueueEntry(entry.Body, entry.GetProperties(), "", origin.Name, now, entry.Priority);
                if (origin.Enqueue(copy))
                {
                    moved++;
                }
                else
                {
                    // The origin was deleted between the check and the move: keep the message where it was.
                    var back = new QueueEntry(entry.Body, entry.GetProperties(), entry.Exchange, entry.RoutingKey, now, entry.Priority);
                    source.Enqueue(back);
                }
            }

            return moved;
        }, cancellationToken);
    }

    /// <summary>The queue a dead letter last died in.</summary>
    private BrokerQueue? Origin(QueueEntry entry)
    {
        var deaths = entry.GetProperties().Deaths;
        return deaths.Count > 0 && Topology.TryGetQueue(deaths[0].Queue, out var queue) ? queue : null;
    }

    private ValueTask Run(Action action, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        ThrowIfDisposed();
        action();
        return ValueTask.CompletedTask;
    }

    private ValueTask<TResult> Run<TResult>(Func<TResult> action, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<TResult>(cancellationToken);
        }

        ThrowIfDisposed();
        return new ValueTask<TResult>(action());
    }

    private static ValueTask<TResult> ReadOnly<TResult>(Func<TResult> action, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<TResult>(cancellationToken) : new ValueTask<TResult>(action());

    private void ThrowIfDisposed()
    {
        if (broker.IsDisposed)
        {
            throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed; its queues can be inspected but not changed.");
        }
    }
}
