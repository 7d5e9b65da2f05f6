namespace MessageQueue;

/// <summary>The base of every exception MessageQueue throws for a broker-level problem.</summary>
public class MessageQueueException : Exception
{
    /// <summary>Creates an exception with a message that says what went wrong and what to do.</summary>
    /// <param name="message">What went wrong and what to do about it.</param>
    public MessageQueueException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    /// <param name="message">What went wrong and what to do about it.</param>
    /// <param name="innerException">The cause.</param>
    public MessageQueueException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Creates an exception with a default message.</summary>
    public MessageQueueException() : base("A MessageQueue operation failed.") { }
}
