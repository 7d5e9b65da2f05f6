namespace MessageQueue;

/// <summary>
/// A queue with <see cref="OverflowPolicy.RejectPublish"/> or <see cref="OverflowPolicy.RejectPublishDeadLetter"/>
/// was full. For a single publish the other queues the message routed to still got it, as in RabbitMQ
/// (<see cref="EnqueuedQueues"/> names them); a transaction or batch that fails this way enqueued nothing.
/// </summary>
public sealed class QueueFullException : MessageQueueException
{
    /// <summary>Creates the exception for a publish that one or more full queues refused.</summary>
    /// <param name="rejectedQueues">The queues that refused the message, each with the limit it reached.</param>
    /// <param name="enqueuedQueues">The queues the message was enqueued in anyway.</param>
    /// <param name="deadLettered">Whether the refused message was dead-lettered (<see cref="OverflowPolicy.RejectPublishDeadLetter"/>).</param>
    /// <param name="transaction">Whether the publish was a transaction or batch, of which nothing was enqueued.</param>
    internal QueueFullException(IReadOnlyList<(string Queue, string Limit)> rejectedQueues, IReadOnlyList<string> enqueuedQueues, bool deadLettered, bool transaction)
        : base(Describe(rejectedQueues, enqueuedQueues, deadLettered, transaction))
    {
        Queue = rejectedQueues[0].Queue;
        Limit = rejectedQueues[0].Limit;
        RejectedQueues = [.. rejectedQueues.Select(r => r.Queue)];
        EnqueuedQueues = enqueuedQueues;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public QueueFullException() : this("A queue was full and refused the message.") { }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public QueueFullException(string message) : this(message, null) { }

    /// <summary>Creates the exception with a message and cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public QueueFullException(string message, Exception? innerException) : base(message, innerException)
    {
        Queue = "";
        Limit = "";
        RejectedQueues = [];
        EnqueuedQueues = [];
    }

    /// <summary>Gets the (first) queue that refused the message.</summary>
    public string Queue { get; }

    /// <summary>Gets the limit that queue reached, for example <c>MaxLength = 100</c>.</summary>
    public string Limit { get; }

    /// <summary>Gets every queue that refused the message.</summary>
    public IReadOnlyList<string> RejectedQueues { get; }

    /// <summary>Gets the queues the message was enqueued in although others refused it (empty for a transaction).</summary>
    public IReadOnlyList<string> EnqueuedQueues { get; }

    private static string Describe(IReadOnlyList<(string Queue, string Limit)> rejected, IReadOnlyList<string> enqueued, bool deadLettered, bool transaction)
    {
        var which = string.Join(", ", rejected.Select(r => $"'{r.Queue}' ({r.Limit})"));
        var text = $"Queue {which} is full and refuses new messages (Overflow = RejectPublish).";
        if (transaction)
        {
            return text + " The transaction was not committed: none of its messages was enqueued anywhere.";
        }

        if (deadLettered)
        {
            text += " The refused message was dead-lettered with reason 'maxlen'.";
        }

        return text + (enqueued.Count == 0
            ? " The message was not enqueued in any other queue."
            : $" The message was still enqueued in {string.Join(", ", enqueued.Select(q => $"'{q}'"))}, as RabbitMQ does.");
    }
}
