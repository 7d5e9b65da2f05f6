namespace MessageQueue;

/// <summary>A broker: publish, consume, subscribe and manage. Dispose it (asynchronously or not) to stop it.</summary>
public interface IMessageBroker : IProducer, IAsyncDisposable, IDisposable
{
    /// <summary>Gets the runtime management of topology and queues.</summary>
    IBrokerManagement Management { get; }

    /// <summary>Starts a pull consumer of a queue.</summary>
    /// <typeparam name="T">The message type; other messages in the queue are dead-lettered when they reach this consumer.</typeparam>
    /// <param name="queue">The queue name.</param>
    /// <param name="configure">Sets the consumer's options.</param>
    /// <returns>The consumer; dispose it to leave the queue.</returns>
    /// <exception cref="TopologyException">The queue does not exist.</exception>
    IConsumer<T> Consume<T>(string queue, Action<ConsumerOptions>? configure = null);

    /// <summary>Starts a push subscription: the broker calls <paramref name="handler"/> for each message.
    /// Returning acks the message; throwing applies <see cref="SubscriptionOptions.Retry"/>.</summary>
    /// <typeparam name="T">The message type; other messages in the queue are dead-lettered when they reach this subscription.</typeparam>
    /// <param name="queue">The queue name.</param>
    /// <param name="handler">The handler.</param>
    /// <param name="configure">Sets the subscription's options.</param>
    /// <returns>The subscription; dispose it to stop.</returns>
    /// <exception cref="TopologyException">The queue does not exist.</exception>
    ISubscription Subscribe<T>(string queue, Func<Delivery<T>, CancellationToken, ValueTask> handler, Action<SubscriptionOptions<T>>? configure = null);
}
