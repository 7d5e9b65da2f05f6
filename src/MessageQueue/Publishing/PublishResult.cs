namespace MessageQueue;

/// <summary>
/// The confirm of a publish: the message id and how many queues the message reached. When
/// <see cref="IProducer.PublishAsync{T}"/> returns, the message is in every one of those queues.
/// </summary>
public readonly struct PublishResult : IEquatable<PublishResult>
{
    // A string id, or a source that makes it on first read (the engine's queue entry: saves an allocation per
    // message on the hot path, where nobody reads the id). No engine type: any backend can make a result.
    private readonly object? _id;

    internal PublishResult(object id, int routedQueues, int duplicateQueues = 0)
    {
        _id = id;
        RoutedQueues = routedQueues;
        DuplicateQueues = duplicateQueues;
    }

    /// <summary>Gets the id of the published message.</summary>
    public string MessageId => _id switch
    {
        string s => s,
        Queues.IMessageIdSource source => source.MessageId,
        _ => "",
    };

    /// <summary>Gets the number of queues the message was enqueued in.</summary>
    public int RoutedQueues { get; }

    /// <summary>Gets whether the message reached at least one queue.</summary>
    public bool IsRouted => RoutedQueues > 0;

    /// <summary>Gets how many queues recognised the message id within their
    /// <see cref="QueueOptions.DeduplicationWindow"/> and did not enqueue it again.</summary>
    public int DuplicateQueues { get; }

    /// <summary>Gets whether a queue's deduplication window recognised the message as a duplicate (it was not
    /// enqueued there; <see cref="RoutedQueues"/> counts the queues where it was).</summary>
    public bool IsDuplicate => DuplicateQueues > 0;

    /// <inheritdoc/>
    public bool Equals(PublishResult other) => MessageId == other.MessageId && RoutedQueues == other.RoutedQueues && DuplicateQueues == other.DuplicateQueues;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is PublishResult other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(MessageId, RoutedQueues, DuplicateQueues);

    /// <summary>Compares two results.</summary>
    /// <param name="left">The first.</param>
    /// <param name="right">The second.</param>
    /// <returns>Whether they are equal.</returns>
    public static bool operator ==(PublishResult left, PublishResult right) => left.Equals(right);

    /// <summary>Compares two results.</summary>
    /// <param name="left">The first.</param>
    /// <param name="right">The second.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(PublishResult left, PublishResult right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => IsDuplicate
        ? $"{MessageId} -> {RoutedQueues} queue(s), duplicate in {DuplicateQueues}"
        : $"{MessageId} -> {RoutedQueues} queue(s)";
}
