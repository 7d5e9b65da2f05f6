using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Consuming;

/// <summary>
/// A push subscription: <c>Concurrency</c> workers read the consumer's window and call the handler. Success
/// acks; an exception retries through a (possibly delayed) redelivery in the queue, then dead-letters.
/// </summary>
internal sealed partial class Subscription<T> : ISubscription, IRunsHandlers, IStopsGracefully
{
    private readonly ConsumerCore _core;
    private readonly Func<Delivery<T>, CancellationToken, ValueTask> _handler;
    private readonly RetryPolicy _retry;
    private readonly MessageBroker _broker;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _abort = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task[] _workers;
    private const int Stride = 16; // one 64-byte cache line per worker's flag: workers on other cores do not share it
    private readonly int[] _handling; // per worker (at index * Stride): 1 while its handler runs (see InFlight); plain stores
    private int _orderedRunning;
    private Task? _disposing;

    internal Subscription(ConsumerCore core, Func<Delivery<T>, CancellationToken, ValueTask> handler, SubscriptionOptions<T> options, MessageBroker broker, ILogger logger)
    {
        _core = core;
        _handler = handler;
        _retry = options.Retry;
        _broker = broker;
        _logger = logger;
        if (options.OrderingKey is { } orderingKey)
        {
            _orderingKey = orderingKey;
            _slots = new SemaphoreSlim(options.Concurrency, options.Concurrency);
            _handling = [];
            _workers = [Task.Run(RunOrderedAsync)];
            return;
        }

        _handling = new int[options.Concurrency * Stride];
        _workers = new Task[options.Concurrency];
        for (var i = 0; i < _workers.Length; i++)
        {
            var index = i;
            _workers[i] = Task.Run(() => RunAsync(index));
        }
    }

    /// <inheritdoc/>
    public bool HandlersRunning
    {
        get
        {
            if (Volatile.Read(ref _orderedRunning) > 0)
            {
                return true;
            }

            for (var i = 0; i < _handling.Length; i += Stride)
            {
                if (Volatile.Read(ref _handling[i]) != 0)
                {
                    return true;
                }
            }

            return false;
        }
    }

    public string Queue => _core.Queue.Name;

    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken giveUp)
    {
        lock (_workers)
        {
            return _disposing ??= StopAsync(_broker.ShutdownTimeout, giveUp);
        }
    }

    private async Task StopAsync(TimeSpan timeout, CancellationToken giveUp)
    {
        // 1. No new deliveries; those not yet taken go back to the queue; retries waiting in place give up.
        _core.Queue.StopConsumer(_core);
        await _stopping.CancelAsync().ConfigureAwait(false);

        // 2. Running handlers get the timeout to finish; then their token is cancelled.
        var workers = Task.WhenAll(_workers);
        try
        {
            await workers.WaitAsync(Scheduling.Durations.ForWait(timeout), _broker.Time, giveUp).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException || (ex is OperationCanceledException && giveUp.IsCancellationRequested))
        {
            LogShutdownTimeout(_logger, Queue, timeout);
            await _abort.CancelAsync().ConfigureAwait(false);
        }

        // 3. Whatever is still unsettled returns to the queue.
        _core.Queue.RemoveConsumer(_core);
        _broker.Forget(this);
    }

    private async Task RunAsync(int index)
    {
        // A worker is not part of whatever the subscriber was doing: spans of messages without trace context are roots.
        System.Diagnostics.Activity.Current = null;
        var batch = new WorkerBatch(_core, ownsWindow: _workers.Length == 1);
        try
        {
            await WorkAsync(index, batch).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ChannelClosedException or TopologyException)
        {
            // The queue was deleted: its channel completed with a TopologyException. The subscription ends.
            LogQueueDeleted(_logger, Queue);
        }
        finally
        {
            batch.Flush();
        }
    }

    /// <summary>One worker: takes deliveries until the window completes, and calls the handler on each.</summary>
    private async Task WorkAsync(int index, WorkerBatch batch)
    {
        while (true)
        {
            if (!batch.TryTake(out var handoff))
            {
                if (!batch.Refill() && !await batch.Reader.WaitToReadAsync().ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            if (!_core.TryClaim<T>(handoff))
            {
                continue; // returned meanwhile (stop, ack timeout), expired in the window, or of another type
            }

            var delivery = new Delivery<T>(handoff.Entry, _core, handoff.Tag, handoff.DeliveryCount);
            Exception? failure = null;
            Volatile.Write(ref _handling[index * Stride], 1); // a handler that settles early and publishes after is still work
            var activity = Diagnostics.BrokerTracing.StartConsume(Queue, handoff.Entry, handoff.DeliveryCount, process: true);
            var started = _broker.Context.Metrics.ProcessStart();
            var ended = false;
            try
            {
                try
                {
                    var pending = _handler(delivery, _abort.Token);
                    if (!pending.IsCompletedSuccessfully)
                    {
                        batch.Flush();
                        await pending.ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException ex) when (_abort.IsCancellationRequested)
                {
                    EndProcess(activity, started, ex);
                    ended = true;
                    continue; // shutdown gave up waiting; the message returns to the queue
                }
#pragma warning disable CA1031 // A handler's failure must become a retry or a dead letter, whatever it is.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    failure = ex;
                }

                EndProcess(activity, started, failure); // before the settle: whoever sees the ack sees the measurement
                ended = true;
                Settle(batch, handoff, delivery, failure);
            }
            finally
            {
                Volatile.Write(ref _handling[index * Stride], 0);
                if (!ended)
                {
                    EndProcess(activity, started, failure);
                }

                _broker.Context.InFlight.Signal();
            }
        }
    }

    private void Settle(WorkerBatch batch, in Handoff handoff, Delivery<T> delivery, Exception? failure)
    {
        if (failure is null)
        {
            // A handler may have settled the delivery itself: then this ack is skipped. Until the ack is
            // flushed the delivery is unacked, which keeps the broker busy (see InFlight).
            batch.Ack(handoff);
        }
        else
        {
            batch.Flush();
            Fail(delivery, failure);
        }
    }

    /// <summary>
    /// One worker's deliveries and acks. Acks of handlers that finished synchronously are settled together under one
    /// lock, which also takes the next ready messages straight into the local buffer when the window channel is empty
    /// (no channel hop under load). Acks are flushed before the worker awaits anything (a slow handler, an empty
    /// queue): none is held back. Owned by one worker; never shared.
    /// </summary>
    private sealed class WorkerBatch
    {
        private readonly ConsumerCore _core;
        private readonly Handoff[] _acks;
        private readonly Handoff[] _local; // empty when several workers share the window
        private int _pendingAcks;
        private int _localCount;
        private int _localNext;

        internal WorkerBatch(ConsumerCore core, bool ownsWindow)
        {
            _core = core;
            Reader = core.Channel.Reader;
            var size = Math.Clamp(core.Prefetch, 1, 64);
            _acks = new Handoff[size];
            _local = ownsWindow ? new Handoff[size] : [];
        }

        internal ChannelReader<Handoff> Reader { get; }

        /// <summary>The next delivery from the local buffer or the window, without waiting.</summary>
        internal bool TryTake(out Handoff handoff)
        {
            if (_localNext < _localCount)
            {
                handoff = _local[_localNext];
                _local[_localNext++] = default;
                return true;
            }

            if (!Reader.TryRead(out handoff))
            {
                return false;
            }

            if (_local.Length == 0 && Reader.Count == 0)
            {
                // Several workers share the window: whoever empties it asks for more (or marks the
                // consumer waiting), so idle siblings are fed. Under load this is once per window-full.
                Flush(wait: true);
            }

            return true;
        }

        /// <summary>Settles the pending acks and takes ready messages into the local buffer (or marks the consumer
        /// waiting). False when nothing was taken: the worker then waits on <see cref="Reader"/>.</summary>
        internal bool Refill()
        {
            _localCount = _core.Queue.AckAndRefill(_core, _acks.AsSpan(0, _pendingAcks), _local, wait: true);
            Array.Clear(_acks, 0, _pendingAcks);
            _pendingAcks = 0;
            _localNext = 0;
            return _localCount > 0;
        }

        internal void Ack(in Handoff handoff)
        {
            _acks[_pendingAcks++] = handoff;
            if (_pendingAcks == _acks.Length)
            {
                Flush();
            }
        }

        internal void Flush(bool wait = false)
        {
            if (_pendingAcks > 0 || wait)
            {
                _core.Queue.AckAndRefill(_core, _acks.AsSpan(0, _pendingAcks), [], wait);
                Array.Clear(_acks, 0, _pendingAcks);
                _pendingAcks = 0;
            }
        }
    }

    private void Fail(Delivery<T> delivery, Exception exception)
    {
        if (RetryDelay(delivery, exception) is { } delay)
        {
            delivery.TryRetry(delay);
        }
        else
        {
            delivery.TryFail(exception);
        }
    }

    /// <summary>Decides a failed delivery by the retry policy: the wait before its retry, or null to dead-letter it
    /// (its exception is not retried, or its retries are spent). Logged either way, naming the message.</summary>
    private TimeSpan? RetryDelay(Delivery<T> delivery, Exception exception)
    {
        var attempt = delivery.DeliveryCount;
        var messageId = delivery.Properties.MessageId;
        if (!_retry.ShouldRetry(exception))
        {
            LogNotRetried(_logger, Queue, messageId, attempt, exception.GetType().Name, exception);
            return null;
        }

        if (attempt > _retry.MaxRetries)
        {
            LogDeadLetter(_logger, Queue, messageId, attempt, exception);
            return null;
        }

        var delay = _retry.GetDelay(attempt);
        LogRetry(_logger, Queue, messageId, attempt, delay, exception);
        return delay;
    }

    [LoggerMessage(EventId = 1, EventName = "HandlerRetrying", Level = LogLevel.Warning, Message = "Handler for queue '{Queue}' failed on message {MessageId} (delivery {DeliveryCount}); retrying in {Delay}")]
    private static partial void LogRetry(ILogger logger, string queue, string messageId, int deliveryCount, TimeSpan delay, Exception exception);

    [LoggerMessage(EventId = 2, EventName = "HandlerDeadLettering", Level = LogLevel.Warning, Message = "Handler for queue '{Queue}' failed on message {MessageId} (delivery {DeliveryCount}); retries exhausted, dead-lettering")]
    private static partial void LogDeadLetter(ILogger logger, string queue, string messageId, int deliveryCount, Exception exception);

    [LoggerMessage(EventId = 6, EventName = "HandlerNotRetried", Level = LogLevel.Warning, Message = "Handler for queue '{Queue}' failed on message {MessageId} (delivery {DeliveryCount}) with {ExceptionType}, which the retry policy does not retry; dead-lettering")]
    private static partial void LogNotRetried(ILogger logger, string queue, string messageId, int deliveryCount, string exceptionType, Exception exception);

    [LoggerMessage(EventId = 4, EventName = "SubscriptionQueueDeleted", Level = LogLevel.Warning, Message = "Queue '{Queue}' was deleted; its subscription stopped")]
    private static partial void LogQueueDeleted(ILogger logger, string queue);

    [LoggerMessage(EventId = 3, EventName = "ShutdownTimedOut", Level = LogLevel.Warning, Message = "Handlers for queue '{Queue}' did not finish in time (the broker's shutdown timeout {Timeout}, or the host's, whichever came first); cancelling them and returning their messages")]
    private static partial void LogShutdownTimeout(ILogger logger, string queue, TimeSpan timeout);
}
