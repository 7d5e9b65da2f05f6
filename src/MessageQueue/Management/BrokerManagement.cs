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

    public async ValueTask<bool> DeleteQueueAsync(string name, CancellationToken cancellationToken = default)
    {
        var deleted = await Run(() => Topology.DeleteQueue(name), cancellationToken).ConfigureAwait(false);
        await Written().ConfigureAwait(false); // its stored messages are deleted on disk when this completes
        return deleted;
    }

    public ValueTask BindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Bind(exchange, queue ?? throw new ArgumentNullException(nameof(queue)), null, routingKey, arguments), cancellationToken);

    public ValueTask<bool> UnbindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Unbind(exchange, queue ?? throw new ArgumentNullException(nameof(queue)), null, routingKey, arguments), cancellationToken);

    public ValueTask BindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Bind(source, null, destination ?? throw new ArgumentNullException(nameof(destination)), routingKey, arguments), cancellationToken);

    public ValueTask<bool> UnbindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default) =>
        Run(() => Topology.Unbind(source, null, destination ?? throw new ArgumentNullException(nameof(destination)), routingKey, arguments), cancellationToken);

    public QueueInfo GetQueueInfo(string queue) => Topology.GetQueue(queue).GetInfo();

    public IReadOnlyList<string> GetQueueNames() => [.. Topology.Queues.Select(q => q.Name).Order(StringComparer.Ordinal)];

    public async ValueTask<int> PurgeAsync(string queue, CancellationToken cancellationToken = default)
    {
        var purged = await Run(() => Topology.GetQueue(queue).Purge(), cancellationToken).ConfigureAwait(false);
        await Written().ConfigureAwait(false); // the purged messages are deleted on disk when this completes
        return purged;
    }

    /// <summary>Completes when every change queued so far is in the store (at once without one).</summary>
    private Task Written() => context.Durable?.Barrier() ?? Task.CompletedTask;

    public ValueTask<IReadOnlyList<PeekedMessage>> PeekAsync(string queue, int maxMessages = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        return ReadOnly(() => (IReadOnlyList<PeekedMessage>)[.. Topology.GetQueue(queue).Peek(maxMessages)
            .Select(e => new PeekedMessage(e.Body, e.GetProperties(), e.Exchange, e.RoutingKey, e.DeliveryCount))], cancellationToken);
    }

    public ValueTask<int> RedriveAsync(string deadLetterQueue, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default) =>
        RedriveAsync(deadLetterQueue, RedriveTarget.LastDeath, maxMessages, cancellationToken);

    public ValueTask<int> RedriveAsync(string deadLetterQueue, RedriveTarget target, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        if (!Enum.IsDefined(target))
        {
            throw new ArgumentOutOfRangeException(nameof(target), target, "Not a RedriveTarget.");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        ThrowIfDisposed();
        var source = Topology.GetQueue(deadLetterQueue);
        return new ValueTask<int>(new Redrive(context, source, target).RunAsync(maxMessages));
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
