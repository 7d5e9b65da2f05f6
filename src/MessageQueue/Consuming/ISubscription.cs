namespace MessageQueue;

/// <summary>
/// A running push subscription. Dispose it to stop: no new deliveries start, running handlers get the
/// broker's shutdown timeout to finish, and every unsettled delivery returns to the queue.
/// </summary>
public interface ISubscription : IAsyncDisposable
{
    /// <summary>Gets the queue name.</summary>
    string Queue { get; }
}
