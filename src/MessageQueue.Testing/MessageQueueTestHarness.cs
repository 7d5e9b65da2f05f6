using Microsoft.Extensions.Time.Testing;

namespace MessageQueue.Testing;

/// <summary>
/// A broker for tests, on a fake clock (<see cref="FakeTimeProvider"/>), that knows exactly when it is idle: nothing
/// ready or due, nothing unacked, no handler running, no dead letter between queues, no store write pending (cascades
/// included: a handler that publishes to the next queue keeps it busy). Never decided from inactivity.
/// </summary>
/// <example>
/// <code>
/// await using var harness = new MessageQueueTestHarness(mq => mq.AddQueue("billing"));
/// await using var sub = harness.Broker.Subscribe&lt;Order&gt;("billing", handler);
/// await harness.Broker.SendAsync("billing", new Order(1));
/// await harness.WaitForIdleAsync();            // the handler ran, and everything it published was handled
/// harness.Time.Advance(TimeSpan.FromSeconds(5)); // delays, TTL, retries and ack timeouts move together
/// </code>
/// </example>
public sealed class MessageQueueTestHarness : IAsyncDisposable, IDisposable
{
    /// <summary>How long <see cref="WaitForIdleAsync"/> waits by default (real time: the fake clock never moves by itself).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly MessageBroker _engine;
    private readonly HarnessObserver _observer = new();
    private readonly bool _ownsBroker = true;

    /// <summary>Builds the broker <paramref name="configure"/> declares, on <see cref="Time"/> (set after
    /// <paramref name="configure"/>, so the harness's clock is the broker's). Durable and lazy queues live in memory
    /// unless <see cref="MessageQueueTestHarnessOptions.KeepStore"/>.</summary>
    /// <param name="configure">Declares the topology and options, as for <see cref="MessageBrokerBuilder"/>.</param>
    /// <param name="options">The harness's options (the clock's start, the store); the defaults when null.</param>
    /// <exception cref="TopologyException">The topology is invalid.</exception>
    public MessageQueueTestHarness(Action<MessageBrokerBuilder> configure, MessageQueueTestHarnessOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(configure);
        options ??= new MessageQueueTestHarnessOptions();
        Time = new FakeTimeProvider(options.Start);
        var builder = new MessageBrokerBuilder();
        configure(builder);
        builder.Observer = _observer;
        builder.KeepDurableQueuesInMemory = !options.KeepStore;
        _engine = (MessageBroker)builder.UseTimeProvider(Time).Build();
    }

    /// <summary>The harness of a broker a container built (<c>AddMessageQueueTestHarness</c>); the container owns it.</summary>
    internal MessageQueueTestHarness(IMessageBroker broker, FakeTimeProvider time, HarnessObserver observer)
    {
        _engine = broker as MessageBroker ?? throw new InvalidOperationException("The test harness runs on the in-process broker.");
        Time = time;
        _observer = observer;
        _ownsBroker = false;
    }

    /// <summary>Gets the publishes the broker accepted (sends and committed transactions included).</summary>
    public RecordedMessages<PublishedMessage> Published => _observer.PublishedList;

    /// <summary>Gets the deliveries code took (a handler ran, or a pull consumer received), retries included.</summary>
    public RecordedMessages<ConsumedMessage> Delivered => _observer.DeliveredList;

    /// <summary>Gets the deliveries acknowledged.</summary>
    public RecordedMessages<ConsumedMessage> Acked => _observer.AckedList;

    /// <summary>Gets the deliveries nacked back to their queue (handler retries included).</summary>
    public RecordedMessages<NackedMessage> Nacked => _observer.NackedList;

    /// <summary>Gets the messages that left a queue as dead letters, with reason and exception.</summary>
    public RecordedMessages<DeadLetteredMessage> DeadLettered => _observer.DeadLetteredList;

    /// <summary>Gets the broker under test.</summary>
    public IMessageBroker Broker => _engine;

    /// <summary>Gets the broker's clock: <c>Time.Advance(...)</c> moves delays, TTL, retries and ack timeouts.</summary>
    public FakeTimeProvider Time { get; }

    /// <summary>Completes exactly when the broker is idle (see the type's summary): delayed messages and retries not
    /// yet due on the fake clock do not count until <see cref="Time"/> reaches them, and ready messages count only in
    /// queues that have a consumer (messages left in a dead-letter queue the test inspects cannot make progress).</summary>
    /// <param name="timeout">How long to wait, in real time; <see cref="DefaultTimeout"/> when null.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the broker is idle.</returns>
    /// <exception cref="TimeoutException">The broker was still busy at the timeout; the message says with what
    /// (queue and counts).</exception>
    public async Task WaitForIdleAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var wait = timeout ?? DefaultTimeout;
        try
        {
            await _engine.WhenIdleOrStuckAsync(cancellationToken).WaitAsync(wait, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The broker was not idle within {wait}: {_engine.Context.InFlight.Busy(readyNeedsConsumer: true) ?? "it became idle just as the wait ended"}.");
        }
    }

    /// <summary>Stops the broker as disposing it does, with its shutdown timeout counted in real time (the fake clock
    /// never moves by itself: a handler still running is cancelled after the timeout, not never). A container's broker
    /// is left to the container (its host stops the subscriptions on the host's clock).</summary>
    /// <returns>A task that completes when it has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (!_ownsBroker)
        {
            return;
        }

        var timeout = _engine.ShutdownTimeout;
        using var giveUp = Scheduling.Durations.IsInfinite(timeout)
            ? new CancellationTokenSource()
            : new CancellationTokenSource(TimeSpan.FromMilliseconds(Math.Min(timeout.TotalMilliseconds, int.MaxValue - 1)));
        await _engine.StopSubscriptionsAsync(giveUp.Token).ConfigureAwait(false);
        await _engine.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the broker, blocking until it has stopped.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
