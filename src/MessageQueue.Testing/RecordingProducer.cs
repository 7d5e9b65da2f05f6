using System.Collections.Concurrent;

namespace MessageQueue.Testing;

/// <summary>A message <see cref="RecordingProducer"/> was asked to publish.</summary>
/// <param name="Exchange">The exchange ("" for a send to a queue by name).</param>
/// <param name="RoutingKey">The routing key (the queue's name for a send).</param>
/// <param name="Message">The message.</param>
/// <param name="Options">The publish options given, if any.</param>
/// <param name="MessageId">The id the publish reported: the options' id, or a generated one.</param>
public sealed record RecordedPublish(string Exchange, string RoutingKey, object Message, PublishOptions? Options, string MessageId);

/// <summary>
/// An <see cref="IProducer"/> for unit tests of code that publishes: it records what would be published, in order,
/// and reports each as routed to one queue. <see cref="FailWith"/> makes publishes throw (a full queue, an
/// unroutable message) to test error paths. Transactions record their messages only when committed.
/// </summary>
public sealed class RecordingProducer : IProducer
{
    private readonly ConcurrentQueue<RecordedPublish> _published = new();
    private Func<RecordedPublish, Exception?>? _failure;

    /// <summary>Gets what was published, in order (a snapshot).</summary>
    public IReadOnlyList<RecordedPublish> Published => [.. _published];

    /// <summary>The messages of type <typeparamref name="T"/> published, in order, optionally only those matching
    /// <paramref name="predicate"/>.</summary>
    /// <typeparam name="T">The message type.</typeparam>
    /// <param name="predicate">A filter, or null.</param>
    /// <returns>The messages.</returns>
    public IReadOnlyList<T> Messages<T>(Func<T, bool>? predicate = null) =>
        [.. _published.Select(p => p.Message).OfType<T>().Where(m => predicate?.Invoke(m) ?? true)];

    /// <summary>From now on, a publish for which <paramref name="failure"/> returns an exception throws it and records
    /// nothing (null lets it through). For example <c>p =&gt; new QueueFullException(...)</c>.</summary>
    /// <param name="failure">Decides the failure of each publish; null stops failing.</param>
    /// <returns>This producer.</returns>
    public RecordingProducer FailWith(Func<RecordedPublish, Exception?>? failure)
    {
        _failure = failure;
        return this;
    }

    /// <summary>Forgets what was recorded.</summary>
    public void Clear() => _published.Clear();

    /// <inheritdoc/>
    public ValueTask<PublishResult> PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(routingKey);
        ArgumentNullException.ThrowIfNull(message);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<PublishResult>(cancellationToken);
        }

        var publish = new RecordedPublish(exchange, routingKey, message, options, options?.MessageId ?? Queues.MessageIds.New());
        if (_failure?.Invoke(publish) is { } failure)
        {
            return ValueTask.FromException<PublishResult>(failure);
        }

        _published.Enqueue(publish);
        return ValueTask.FromResult(new PublishResult(publish.MessageId, routedQueues: 1));
    }

    /// <inheritdoc/>
    public ValueTask<PublishResult> SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        return PublishAsync("", queue, message, options, cancellationToken);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<PublishResult>> PublishBatchAsync<T>(string exchange, string routingKey, IEnumerable<T> messages, Func<T, PublishOptions?>? options = null, CancellationToken cancellationToken = default) =>
        Publishing.Batches.PublishAsync(this, exchange, routingKey, messages, options, cancellationToken);

    /// <inheritdoc/>
    public IPublishTransaction BeginTransaction() => new Transaction(this);

    private sealed class Transaction(RecordingProducer producer) : IPublishTransaction
    {
        private readonly List<RecordedPublish> _staged = [];
        private bool _done;

        public int Count => _staged.Count;

        public ValueTask PublishAsync<T>(string exchange, string routingKey, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(exchange);
            ArgumentNullException.ThrowIfNull(routingKey);
            ArgumentNullException.ThrowIfNull(message);
            ObjectDisposedException.ThrowIf(_done, this);
            _staged.Add(new RecordedPublish(exchange, routingKey, message, options, options?.MessageId ?? Queues.MessageIds.New()));
            return ValueTask.CompletedTask;
        }

        public ValueTask SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default) =>
            PublishAsync("", queue, message, options, cancellationToken);

        public ValueTask<IReadOnlyList<PublishResult>> CommitAsync(CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled<IReadOnlyList<PublishResult>>(cancellationToken);
            }

            foreach (var publish in _staged)
            {
                if (producer._failure?.Invoke(publish) is { } failure)
                {
                    return ValueTask.FromException<IReadOnlyList<PublishResult>>(failure); // all or nothing: none recorded
                }
            }

            _done = true;
            foreach (var publish in _staged)
            {
                producer._published.Enqueue(publish);
            }

            return ValueTask.FromResult<IReadOnlyList<PublishResult>>([.. _staged.Select(p => new PublishResult(p.MessageId, routedQueues: 1))]);
        }

        public ValueTask DisposeAsync()
        {
            _done = true;
            _staged.Clear();
            return ValueTask.CompletedTask;
        }
    }
}
