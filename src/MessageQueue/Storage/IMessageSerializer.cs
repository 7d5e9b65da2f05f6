namespace MessageQueue;

/// <summary>
/// Turns message bodies into bytes and back, where a message leaves memory (durable queues, lazy queues, a
/// RabbitMQ transport). In memory, bodies are handed over by reference and never serialized.
/// </summary>
public interface IMessageSerializer
{
    /// <summary>Gets the MIME type of what <see cref="Serialize"/> produces, e.g. <c>application/json</c>.</summary>
    string ContentType { get; }

    /// <summary>Serializes a body.</summary>
    /// <param name="body">The body.</param>
    /// <param name="type">The body's runtime type.</param>
    /// <returns>The bytes.</returns>
    byte[] Serialize(object body, Type type);

    /// <summary>Deserializes a body.</summary>
    /// <param name="data">The bytes <see cref="Serialize"/> produced.</param>
    /// <param name="type">The type to produce.</param>
    /// <returns>The body.</returns>
    object Deserialize(ReadOnlySpan<byte> data, Type type);
}
