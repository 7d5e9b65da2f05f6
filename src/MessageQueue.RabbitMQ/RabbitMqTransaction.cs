using MessageQueue.Routing;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// A publish transaction on RabbitMQ (and <c>PublishBatchAsync</c>, which is one). Publishes are checked and
/// serialized as they are staged (an unknown exchange or queue, bad options or a body that cannot be serialized fail
/// the call that stages it); <see cref="CommitAsync"/> sends them all in one AMQP transaction (<c>tx.select</c>, the
/// publishes, <c>tx.commit</c>) on a channel of its own. How far all-or-nothing goes on RabbitMQ: nothing is routed
/// before the commit, and a failure before <c>tx.commit-ok</c> (the connection drops, the process dies) routes none
/// of them; after it, all were routed. But a queue whose length limit rejects publishes drops the messages it refuses
/// inside a committed transaction without telling (AMQP transactions have no per-message nack), and RabbitMQ cannot
/// hold back a whole transaction for one unroutable message, so <see cref="PublishOptions.Mandatory"/> is refused here.
/// </summary>
internal sealed class RabbitMqTransaction(RabbitMqBroker broker) : IPublishTransaction
{
    private readonly List<Staged> _staged = [];
    private readonly HashSet<string> _checked = new(StringComparer.Ordinal);
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
        return StageAsync(exchange, routingKey, isQueue: false, message, options, cancellationToken);
    }

    public ValueTask SendAsync<T>(string queue, T message, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(message);
        return StageAsync("", queue, isQueue: true, message, options, cancellationToken);
    }

    private async ValueTask StageAsync(string exchange, string routingKey, bool isQueue, object message, PublishOptions? options, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        cancellationToken.ThrowIfCancellationRequested();
        if (options is { Mandatory: true })
        {
            throw new NotSupportedException("PublishOptions.Mandatory cannot be honoured in a transaction on RabbitMQ: the server reports an unroutable message only after the whole transaction is committed. Publish it outside the transaction, or route it through an alternate exchange.");
        }

        var properties = broker.Properties(message, options, out var delay);
        var body = broker.Publisher.Serialize(message);
        var amqp = RabbitMqProperties.ToAmqp(properties);
        var name = isQueue ? routingKey : exchange;
        if (delay > TimeSpan.Zero)
        {
            // Staged into the delay cascade: the commit publishes it to a level exchange in the same transaction.
            var toQueue = isQueue || exchange.Length == 0;
            var (level, key, delayed) = await broker.Delays.PrepareAsync(toQueue, toQueue ? routingKey : exchange, exchange, routingKey, properties, 0, delay, cancellationToken).ConfigureAwait(false);
            ThrowIfNotOpen();
            _staged.Add(new Staged(level, key, body, delayed, properties.MessageId));
            return;
        }

        if (name.Length > 0 && !_checked.Contains((isQueue ? "q:" : "e:") + name))
        {
            if (!await ((RabbitMqManagement)broker.Management).ExistsAsync(name, exchange: !isQueue, cancellationToken).ConfigureAwait(false))
            {
                throw new TopologyException(isQueue
                    ? $"Queue '{name}' does not exist on the RabbitMQ server; declare it before sending to it."
                    : $"Exchange '{name}' does not exist on the RabbitMQ server; declare it first.");
            }

            _checked.Add((isQueue ? "q:" : "e:") + name);
        }

        ThrowIfNotOpen();
        _staged.Add(new Staged(exchange, routingKey, body, amqp, properties.MessageId));
    }

    public async ValueTask<IReadOnlyList<PublishResult>> CommitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfNotOpen();
        cancellationToken.ThrowIfCancellationRequested();
        _state = State.Committing;
        try
        {
            var returned = new List<(string Exchange, string RoutingKey, string? MessageId)>();
            if (_staged.Count > 0)
            {
                var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(broker.Connection, cancellationToken: cancellationToken).ConfigureAwait(false);
                await using (channel.ConfigureAwait(false))
                {
                    // Mandatory on the wire: RabbitMQ returns what reaches no queue before it answers the commit, so each
                    // result says whether its message was routed, as a single publish's does.
                    channel.BasicReturnAsync += (_, e) =>
                    {
                        lock (returned)
                        {
                            returned.Add((e.Exchange, e.RoutingKey, e.BasicProperties.MessageId));
                        }

                        return Task.CompletedTask;
                    };
                    await channel.TxSelectAsync(cancellationToken).ConfigureAwait(false);
                    foreach (var s in _staged)
                    {
                        await channel.BasicPublishAsync(s.Exchange, s.RoutingKey, mandatory: true, s.Properties, s.Body, cancellationToken).ConfigureAwait(false);
                    }

                    await channel.TxCommitAsync(CancellationToken.None).ConfigureAwait(false); // once sent, its outcome is waited for
                }
            }

            var results = new List<PublishResult>(_staged.Count);
            lock (returned)
            {
                foreach (var s in _staged)
                {
                    var index = returned.FindIndex(r => r.Exchange == s.Exchange && r.RoutingKey == s.RoutingKey && r.MessageId == s.MessageId);
                    if (index >= 0)
                    {
                        returned.RemoveAt(index); // returns come in publishing order: the first match is this one
                    }

                    results.Add(new PublishResult(s.MessageId, routedQueues: index >= 0 ? 0 : 1));
                }
            }

            _state = State.Committed;
            _staged.Clear();
            return results;
        }
        catch (global::RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            _state = State.Open;
            throw new TopologyException($"An exchange of the transaction was deleted on the RabbitMQ server before the commit ({ex.ShutdownReason.ReplyText}); nothing was committed.", ex);
        }
        catch
        {
            // Nothing was committed, unless the connection dropped after tx.commit was sent (then RabbitMQ cannot say):
            // the caller may commit again, or dispose.
            _state = State.Open;
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

    private sealed record Staged(string Exchange, string RoutingKey, byte[] Body, BasicProperties Properties, string MessageId);
}
