using MessageQueue.Routing;

namespace MessageQueue.Publishing;

/// <summary>A message waiting in a transaction for its commit.</summary>
internal sealed record StagedMessage(string Exchange, string? Queue, string RoutingKey, object Body, MessageProperties Properties, PublishOptions? Options);

/// <summary>Stages messages in memory and hands them to the broker's all-or-nothing admission at commit.</summary>
internal sealed class PublishTransaction(MessageBroker broker) : IPublishTransaction
{
    private readonly List<StagedMessage> _staged = [];
    private State _state;

    private enum State
    {
        Open,
        Committing,
        Committed,
        Disposed,
    }

    public int Count => _staged.Count;

    public ValueTask PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        NameRules.ThrowIfInvalidRoutingKey(routingKey, nameof(routingKey));
        ArgumentNullException.ThrowIfNull(message);
        return Stage(exchange, queue: null, routingKey, message, options, cancellationToken);
    }

    public ValueTask SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(message);
        return Stage(exchange: null, queue, queue, message, options, cancellationToken);
    }

    private ValueTask Stage(string? exchange, string? queue, string routingKey, object message, PublishOptions? options, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        _staged.Add(broker.Stage(exchange, queue, routingKey, message, options));
        return ValueTask.CompletedTask;
    }

    public async ValueTask<IReadOnlyList<PublishResult>> CommitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfNotOpen();
        cancellationToken.ThrowIfCancellationRequested();
        _state = State.Committing;
        try
        {
            var results = await broker.CommitAsync(_staged, cancellationToken).ConfigureAwait(false);
            _state = State.Committed;
            _staged.Clear();
            return results;
        }
        catch
        {
            _state = State.Open; // nothing was enqueued: the caller may fix the cause and commit again, or dispose
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        _state = State.Disposed;
        _staged.Clear();
        return ValueTask.CompletedTask;
    }

    private void ThrowIfNotOpen()
    {
        switch (_state)
        {
            case State.Committing:
                throw new InvalidOperationException("The transaction is committing; wait for CommitAsync before using it again.");
            case State.Committed:
                throw new InvalidOperationException("The transaction was already committed; begin a new one with BeginTransaction().");
            case State.Disposed:
                throw new ObjectDisposedException(nameof(IPublishTransaction), "The transaction was disposed; its staged messages were discarded.");
        }
    }
}
