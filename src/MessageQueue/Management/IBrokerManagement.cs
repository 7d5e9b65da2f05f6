namespace MessageQueue;

/// <summary>
/// Runtime management of a broker: declare and delete exchanges, queues and bindings, inspect queues,
/// purge, browse and redrive dead letters. Declarations are idempotent when repeated the same way and
/// throw <see cref="TopologyException"/> when they conflict.
/// </summary>
public interface IBrokerManagement
{
    /// <summary>Declares an exchange.</summary>
    /// <param name="name">The exchange name.</param>
    /// <param name="type">The exchange type.</param>
    /// <param name="configure">Sets the exchange's options.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the exchange exists.</returns>
    ValueTask DeclareExchangeAsync(string name, ExchangeType type, Action<ExchangeOptions>? configure = null, CancellationToken cancellationToken = default);

    /// <summary>Deletes an exchange and every binding from or to it.</summary>
    /// <param name="name">The exchange name.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>Whether the exchange existed.</returns>
    ValueTask<bool> DeleteExchangeAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Declares a queue.</summary>
    /// <param name="name">The queue name.</param>
    /// <param name="configure">Sets the queue's options.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the queue exists.</returns>
    ValueTask DeclareQueueAsync(string name, Action<QueueOptions>? configure = null, CancellationToken cancellationToken = default);

    /// <summary>Deletes a queue with its messages and bindings; its consumers stop.</summary>
    /// <param name="name">The queue name.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>Whether the queue existed.</returns>
    ValueTask<bool> DeleteQueueAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Binds a queue to an exchange. (Not named <c>BindAsync</c>: ASP.NET Core's minimal APIs take a type with a
    /// method of that name for a parameter binder, which would stop <see cref="IBrokerManagement"/> being injected into
    /// an endpoint.)</summary>
    /// <param name="exchange">The source exchange.</param>
    /// <param name="queue">The destination queue.</param>
    /// <param name="routingKey">The binding key (a pattern for topic exchanges).</param>
    /// <param name="arguments">Binding arguments (headers exchanges match on them).</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the binding exists.</returns>
    ValueTask BindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default);

    /// <summary>Removes a binding from an exchange to a queue.</summary>
    /// <param name="exchange">The source exchange.</param>
    /// <param name="queue">The destination queue.</param>
    /// <param name="routingKey">The binding key.</param>
    /// <param name="arguments">The binding arguments it was made with.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>Whether the binding existed.</returns>
    ValueTask<bool> UnbindQueueAsync(string exchange, string queue, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default);

    /// <summary>Binds an exchange to another exchange (cycles are allowed; routing visits each exchange once).</summary>
    /// <param name="source">The source exchange.</param>
    /// <param name="destination">The destination exchange.</param>
    /// <param name="routingKey">The binding key.</param>
    /// <param name="arguments">Binding arguments.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>A task that completes when the binding exists.</returns>
    ValueTask BindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default);

    /// <summary>Removes a binding between two exchanges.</summary>
    /// <param name="source">The source exchange.</param>
    /// <param name="destination">The destination exchange.</param>
    /// <param name="routingKey">The binding key.</param>
    /// <param name="arguments">The binding arguments it was made with.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>Whether the binding existed.</returns>
    ValueTask<bool> UnbindExchangeAsync(string source, string destination, string routingKey = "", IReadOnlyDictionary<string, object?>? arguments = null, CancellationToken cancellationToken = default);

    /// <summary>Gets a consistent snapshot of a queue's contents and counters.</summary>
    /// <param name="queue">The queue name.</param>
    /// <returns>The snapshot.</returns>
    /// <exception cref="TopologyException">The queue does not exist.</exception>
    QueueInfo GetQueueInfo(string queue);

    /// <summary>Gets the names of every queue.</summary>
    /// <returns>The names, sorted.</returns>
    IReadOnlyList<string> GetQueueNames();

    /// <summary>Removes every ready message from a queue (delivered and delayed ones stay).</summary>
    /// <param name="queue">The queue name.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>How many messages were removed.</returns>
    ValueTask<int> PurgeAsync(string queue, CancellationToken cancellationToken = default);

    /// <summary>Browses the ready messages of a queue in delivery order, without consuming them.</summary>
    /// <param name="queue">The queue name.</param>
    /// <param name="maxMessages">How many messages at most.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>The messages, head first.</returns>
    ValueTask<IReadOnlyList<PeekedMessage>> PeekAsync(string queue, int maxMessages = 100, CancellationToken cancellationToken = default);

    /// <summary>Moves dead letters back to the queue each one last died in (the newest entry of
    /// <see cref="MessageProperties.Deaths"/>, as <c>x-last-death-queue</c> names it), with its delivery count reset
    /// and its death history kept. A message that died in several queues (a chain of dead-letter queues) goes back to
    /// the last one; <see cref="RedriveAsync(string, RedriveTarget, int, CancellationToken)"/> with
    /// <see cref="RedriveTarget.FirstDeath"/> sends it to the first (<c>x-first-death-queue</c>) instead. Messages
    /// whose queue no longer exists, and messages their queue refuses (full under
    /// <see cref="OverflowPolicy.RejectPublish"/>, <see cref="OverflowPolicy.RejectPublishDeadLetter"/> or
    /// <see cref="OverflowPolicy.Block"/>), stay where they are, in their place. Between durable queues a message moves
    /// in one store transaction; the call completes when every move is on disk.</summary>
    /// <param name="deadLetterQueue">The queue holding the dead letters.</param>
    /// <param name="maxMessages">How many messages at most.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>How many messages were moved.</returns>
    ValueTask<int> RedriveAsync(string deadLetterQueue, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default);

    /// <summary>Moves dead letters back to the queue they first or last died in; see
    /// <see cref="RedriveAsync(string, int, CancellationToken)"/>.</summary>
    /// <param name="deadLetterQueue">The queue holding the dead letters.</param>
    /// <param name="target">Which queue of a message's death history it goes back to.</param>
    /// <param name="maxMessages">How many messages at most.</param>
    /// <param name="cancellationToken">Cancels the call before it takes effect.</param>
    /// <returns>How many messages were moved.</returns>
    ValueTask<int> RedriveAsync(string deadLetterQueue, RedriveTarget target, int maxMessages = int.MaxValue, CancellationToken cancellationToken = default);
}
