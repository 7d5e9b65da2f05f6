namespace MessageQueue.Queues;

/// <summary>A message leaving a queue for a dead-letter reason, with what the new headers should say.</summary>
internal readonly record struct DeadLetter(QueueEntry Entry, string Reason, string? Detail = null, Exception? Exception = null, long StoreId = 0);
