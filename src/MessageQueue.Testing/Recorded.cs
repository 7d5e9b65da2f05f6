using System.Collections.Concurrent;

namespace MessageQueue.Testing;

/// <summary>Something the harness recorded about one message.</summary>
public interface IRecordedMessage
{
    /// <summary>Gets the message body.</summary>
    object Message { get; }

    /// <summary>Gets the message id.</summary>
    string MessageId { get; }
}

/// <summary>A publish the broker accepted.</summary>
/// <param name="Exchange">The exchange ("" for a send to a queue).</param>
/// <param name="RoutingKey">The routing key (the queue's name for a send).</param>
/// <param name="Message">The message.</param>
/// <param name="MessageId">Its id.</param>
/// <param name="RoutedQueues">How many queues took it.</param>
public sealed record PublishedMessage(string Exchange, string RoutingKey, object Message, string MessageId, int RoutedQueues) : IRecordedMessage;

/// <summary>A delivery code took, or acked.</summary>
/// <param name="Queue">The queue.</param>
/// <param name="Message">The message.</param>
/// <param name="MessageId">Its id.</param>
/// <param name="DeliveryCount">Which delivery (2 or more: a redelivery).</param>
public sealed record ConsumedMessage(string Queue, object Message, string MessageId, int DeliveryCount) : IRecordedMessage;

/// <summary>A delivery nacked back to its queue (a retry).</summary>
/// <param name="Queue">The queue.</param>
/// <param name="Message">The message.</param>
/// <param name="MessageId">Its id.</param>
/// <param name="DeliveryCount">Which delivery was nacked.</param>
/// <param name="Delay">How long it waits before it is ready again.</param>
public sealed record NackedMessage(string Queue, object Message, string MessageId, int DeliveryCount, TimeSpan Delay) : IRecordedMessage;

/// <summary>A message that left its queue as a dead letter.</summary>
/// <param name="Queue">The queue it died in.</param>
/// <param name="Message">The message.</param>
/// <param name="MessageId">Its id.</param>
/// <param name="Reason">RabbitMQ's reason: <c>rejected</c>, <c>expired</c>, <c>maxlen</c>, <c>delivery_limit</c>.</param>
/// <param name="Detail">The rejection reason given, if any.</param>
/// <param name="Exception">The handler's exception, if a failure dead-lettered it.</param>
public sealed record DeadLetteredMessage(string Queue, object Message, string MessageId, string Reason, string? Detail, Exception? Exception) : IRecordedMessage;

/// <summary>The harness's exact assertions failed: the message shows what was recorded.</summary>
public sealed class MessageQueueAssertionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MessageQueueAssertionException() : base("A MessageQueue assertion failed.") { }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was expected and what was recorded.</param>
    public MessageQueueAssertionException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was expected and what was recorded.</param>
    /// <param name="innerException">The cause.</param>
    public MessageQueueAssertionException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// A list the harness records into, in order, safe to read while the broker runs. Filter by message type and
/// predicate; await a record (<see cref="AnyAsync{TMessage}"/>: woken by each new record, never polling); assert
/// exact counts (<see cref="Exactly{TMessage}"/>, <see cref="Only{TMessage}"/>) with messages that show the list.
/// </summary>
/// <typeparam name="TRecord">What is recorded.</typeparam>
public sealed class RecordedMessages<TRecord>
    where TRecord : IRecordedMessage
{
    private readonly ConcurrentQueue<TRecord> _records = new();
    private readonly string _name;
    private TaskCompletionSource _added = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal RecordedMessages(string name) => _name = name;

    /// <summary>Gets everything recorded so far, in order (a snapshot).</summary>
    public IReadOnlyList<TRecord> All => [.. _records];

    /// <summary>The records of messages of type <typeparamref name="TMessage"/> matching <paramref name="predicate"/>.</summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <param name="predicate">A filter on the message, or null.</param>
    /// <returns>The records, in order.</returns>
    public IReadOnlyList<TRecord> Of<TMessage>(Func<TMessage, bool>? predicate = null) =>
        [.. _records.Where(r => r.Message is TMessage m && (predicate?.Invoke(m) ?? true))];

    /// <summary>Waits until a message of type <typeparamref name="TMessage"/> matching <paramref name="predicate"/>
    /// is recorded (at once if one was).</summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <param name="predicate">A filter on the message, or null.</param>
    /// <param name="timeout">How long to wait, in real time; 10 s when null.</param>
    /// <returns>The first matching record.</returns>
    /// <exception cref="TimeoutException">None came; the message lists what was recorded instead.</exception>
    public async Task<TRecord> AnyAsync<TMessage>(Func<TMessage, bool>? predicate = null, TimeSpan? timeout = null)
    {
        var wait = timeout ?? MessageQueueTestHarness.DefaultTimeout;
        using var deadline = new CancellationTokenSource(wait);
        while (true)
        {
            var added = Volatile.Read(ref _added).Task; // taken before the look: a record after it completes it
            if (Of(predicate) is [var first, ..])
            {
                return first;
            }

            try
            {
                await added.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"No {typeof(TMessage).Name} matching the condition was {_name} within {wait}. {Describe()}");
            }
        }
    }

    /// <summary>Asserts that exactly <paramref name="count"/> messages of type <typeparamref name="TMessage"/>
    /// matching <paramref name="predicate"/> were recorded (others may be).</summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <param name="count">How many.</param>
    /// <param name="predicate">A filter on the message, or null.</param>
    /// <returns>The matching records.</returns>
    /// <exception cref="MessageQueueAssertionException">Another number were; the message lists what was recorded.</exception>
    public IReadOnlyList<TRecord> Exactly<TMessage>(int count, Func<TMessage, bool>? predicate = null)
    {
        var matching = Of(predicate);
        return matching.Count == count ? matching
            : throw new MessageQueueAssertionException($"Expected exactly {count} {typeof(TMessage).Name} {_name}{(predicate is null ? "" : " matching the condition")}, but {matching.Count} were. {Describe()}");
    }

    /// <summary>Asserts that exactly <paramref name="count"/> messages were recorded, all of type
    /// <typeparamref name="TMessage"/>, and nothing else.</summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <param name="count">How many.</param>
    /// <returns>The records.</returns>
    /// <exception cref="MessageQueueAssertionException">Something else was recorded; the message lists it.</exception>
    public IReadOnlyList<TRecord> Only<TMessage>(int count)
    {
        var all = All;
        return all.Count == count && all.All(r => r.Message is TMessage) ? all
            : throw new MessageQueueAssertionException($"Expected exactly {count} {typeof(TMessage).Name} {_name} and nothing else. {Describe()}");
    }

    internal void Add(TRecord record)
    {
        _records.Enqueue(record);
        Interlocked.Exchange(ref _added, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private string Describe()
    {
        var all = All;
        return all.Count == 0
            ? $"Nothing was {_name}."
            : $"{all.Count} {_name}:{string.Concat(all.Take(20).Select(r => $"{Environment.NewLine}  {r}"))}{(all.Count > 20 ? $"{Environment.NewLine}  ..." : "")}";
    }
}
