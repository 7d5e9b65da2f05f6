namespace MessageQueue;

/// <summary>A message body could not be serialized (at publish; nothing was enqueued) or deserialized (the
/// message was dead-lettered with the reason).</summary>
public sealed class MessageSerializationException : MessageQueueException
{
    /// <summary>Creates the exception with a default message.</summary>
    public MessageSerializationException() : base("A message body could not be serialized or deserialized.") { }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public MessageSerializationException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The serializer's exception.</param>
    public MessageSerializationException(string message, Exception? innerException) : base(message, innerException) { }
}
