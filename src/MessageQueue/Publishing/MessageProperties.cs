namespace MessageQueue;

/// <summary>
/// The properties of a message, as AMQP defines them: identity, correlation, headers, priority, time and
/// the dead-letter history. Instances are immutable once published; the broker makes a new instance when
/// it dead-letters a message.
/// </summary>
public sealed class MessageProperties
{
    internal static readonly IReadOnlyDictionary<string, object?> NoHeaders = new Dictionary<string, object?>();

    /// <summary>Gets the unique id of the message.</summary>
    /// <value>Generated when the publisher gives none.</value>
    public string MessageId { get; init; } = "";

    /// <summary>Gets the id that correlates this message with another (a request, a conversation).</summary>
    public string? CorrelationId { get; init; }

    /// <summary>Gets the address a reply should be sent to (usually a queue name).</summary>
    public string? ReplyTo { get; init; }

    /// <summary>Gets the application headers. Keys starting with <c>x-death</c>, <c>x-first-death-</c>,
    /// <c>x-last-death-</c>, <c>x-exception-</c> and <c>x-rejection-reason</c> belong to the broker.</summary>
    /// <value>The default value is an empty dictionary.</value>
    public IReadOnlyDictionary<string, object?> Headers { get; init; } = NoHeaders;

    /// <summary>Gets the priority, 0-255. It is used only by queues that have a maximum priority.</summary>
    public byte Priority { get; init; }

    /// <summary>Gets the time the message was published.</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>Gets the time to live the publisher gave the message, if any.</summary>
    public TimeSpan? Expiration { get; init; }

    /// <summary>Gets the MIME type of the body when it is serialized.</summary>
    public string? ContentType { get; init; }

    /// <summary>Gets the name of the body's type: the name it declares with <see cref="MessageTypeAttribute"/>, else its
    /// CLR full name without the assembly. Stored messages are keyed by it.</summary>
    public string? MessageType { get; init; }

    /// <summary>Gets whether the message should be written to disk by durable queues.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Persistent { get; init; } = true;

    /// <summary>Gets the dead-letter history, newest first: one record per (queue, reason).</summary>
    /// <value>The default value is an empty list.</value>
    public IReadOnlyList<DeathRecord> Deaths { get; init; } = [];

    /// <summary>Gets a header value, or <see langword="null"/> when the header is absent.</summary>
    /// <param name="name">The header name.</param>
    /// <returns>The value, or <see langword="null"/>.</returns>
    public object? GetHeader(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Headers.TryGetValue(name, out var value) ? value : null;
    }

    internal MessageProperties With(IReadOnlyDictionary<string, object?> headers, IReadOnlyList<DeathRecord> deaths) => new()
    {
        MessageId = MessageId,
        CorrelationId = CorrelationId,
        ReplyTo = ReplyTo,
        Headers = headers,
        Priority = Priority,
        Timestamp = Timestamp,
        Expiration = null,
        ContentType = ContentType,
        MessageType = MessageType,
        Persistent = Persistent,
        Deaths = deaths,
    };
}
