namespace MessageQueue;

/// <summary>The message store failed (a read-only or full disk, a locked or corrupt database). The publish that
/// gets it did not happen: nothing of it was enqueued. The broker keeps working for in-memory queues and
/// recovers when the store does. <see cref="MessageBrokerBuilder.Build"/> throws it when the store cannot be
/// opened or what it holds cannot be read (the message names the store and the stored message), after releasing
/// the store.</summary>
public sealed class MessageStoreException : MessageQueueException
{
    /// <summary>Creates the exception with a default message.</summary>
    public MessageStoreException() : base("The message store failed; the operation did not happen.") { }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public MessageStoreException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The store's exception.</param>
    public MessageStoreException(string message, Exception? innerException) : base(message, innerException) { }
}
