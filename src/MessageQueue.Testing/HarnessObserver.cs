using MessageQueue.Queues;

namespace MessageQueue.Testing;

/// <summary>Records what the broker does into the harness's lists.</summary>
internal sealed class HarnessObserver : IBrokerObserver
{
    internal RecordedMessages<PublishedMessage> PublishedList { get; } = new("published");

    internal RecordedMessages<ConsumedMessage> DeliveredList { get; } = new("delivered");

    internal RecordedMessages<ConsumedMessage> AckedList { get; } = new("acked");

    internal RecordedMessages<NackedMessage> NackedList { get; } = new("nacked");

    internal RecordedMessages<DeadLetteredMessage> DeadLetteredList { get; } = new("dead-lettered");

    public void Published(string exchange, string routingKey, object message, string messageId, int routedQueues) =>
        PublishedList.Add(new PublishedMessage(exchange, routingKey, message, messageId, routedQueues));

    public void Delivered(string queue, QueueEntry entry, int deliveryCount) =>
        DeliveredList.Add(new ConsumedMessage(queue, entry.Body, entry.GetProperties().MessageId, deliveryCount));

    public void Acked(string queue, QueueEntry entry) =>
        AckedList.Add(new ConsumedMessage(queue, entry.Body, entry.GetProperties().MessageId, entry.DeliveryCount));

    public void Requeued(string queue, QueueEntry entry, TimeSpan delay) =>
        NackedList.Add(new NackedMessage(queue, entry.Body, entry.GetProperties().MessageId, entry.DeliveryCount, delay));

    public void DeadLettered(string queue, QueueEntry entry, string reason, string? detail, Exception? exception) =>
        DeadLetteredList.Add(new DeadLetteredMessage(queue, entry.Body, entry.GetProperties().MessageId, reason, detail, exception));
}
