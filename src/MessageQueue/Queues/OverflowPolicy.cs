namespace MessageQueue;

/// <summary>What a queue with <see cref="QueueOptions.MaxLength"/> or <see cref="QueueOptions.MaxLengthBytes"/> does
/// with a message that does not fit. The names follow RabbitMQ's <c>x-overflow</c> values.</summary>
public enum OverflowPolicy
{
    /// <summary>The oldest ready messages are dead-lettered (reason <c>maxlen</c>) to make room; the publish
    /// always succeeds. RabbitMQ's default, <c>drop-head</c>.</summary>
    DropHead = 0,

    /// <summary>The publish fails with <see cref="QueueFullException"/>; other queues the message routed to
    /// still get it (RabbitMQ's <c>reject-publish</c>).</summary>
    RejectPublish = 1,

    /// <summary>As <see cref="RejectPublish"/>, and the rejected message is also dead-lettered with reason
    /// <c>maxlen</c> (RabbitMQ's <c>reject-publish-dlx</c>).</summary>
    RejectPublishDeadLetter = 2,

    /// <summary>The publisher waits until the queue has room (back-pressure); its cancellation token is honoured,
    /// and a cancelled publish enqueues nothing anywhere.</summary>
    Block = 3,
}
