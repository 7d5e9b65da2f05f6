using MessageQueue.Consuming;
using MessageQueue.Scheduling;
using Microsoft.Extensions.Logging;

namespace MessageQueue.RabbitMq;

/// <summary>
/// A push subscription on a RabbitMQ queue: a consumer (prefetch at least the concurrency) and as many workers as
/// <see cref="SubscriptionOptions.Concurrency"/> (one when an ordering key is set: messages are then handled one at a
/// time, in queue order, which keeps each key's order). A handler that returns acks the delivery (unless it settled it
/// itself); one that throws is retried by the <see cref="SubscriptionOptions.Retry"/> policy: after a wait, through the
/// transport's delay cascade (<see cref="RabbitMqDelays"/>: the worker is free meanwhile and the wait survives a
/// restart; intervals round up to whole seconds); without a wait, at once in place; with an ordering key, in place
/// after the wait (the worker holds the delivery unacked, which keeps the order, as in memory). Each retry has
/// <see cref="Delivery{T}.DeliveryCount"/> one higher. When the policy gives up, the message is dead-lettered with the
/// exception in its <c>x-exception-*</c> headers (<see cref="RabbitMqDeadLetters"/>). If the process ends while a
/// delivery is held, RabbitMQ requeues the message. Stopping ends the receives and the waits between retries
/// at once, gives running handlers the broker's shutdown timeout, then cancels them and closes the channel, so the
/// server requeues whatever was not settled.
/// </summary>
internal sealed partial class RabbitMqSubscription<T> : ISubscription, IStopsGracefully
{
    private readonly RabbitMqBroker _broker;
    private readonly RabbitMqConsumer<T> _consumer;
    private readonly Func<Delivery<T>, CancellationToken, ValueTask> _handler;
    private readonly RetryPolicy _retry;
    private readonly bool _ordered;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly Task[] _workers;
    private Task? _disposing;

    private RabbitMqSubscription(RabbitMqBroker broker, RabbitMqConsumer<T> consumer, Func<Delivery<T>, CancellationToken, ValueTask> handler, SubscriptionOptions<T> options)
    {
        _broker = broker;
        _consumer = consumer;
        _handler = handler;
        _retry = options.Retry;
        _ordered = options.OrderingKey is not null;
        _workers = new Task[options.OrderingKey is null ? options.Concurrency : 1];
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = Task.Run(RunAsync);
        }
    }

    public string Queue => _consumer.Queue;

    /// <summary>Starts consuming <paramref name="queue"/> and the workers.</summary>
    internal static RabbitMqSubscription<T> Start(RabbitMqBroker broker, string queue, Func<Delivery<T>, CancellationToken, ValueTask> handler, SubscriptionOptions<T> options)
    {
        var prefetch = Math.Min(Math.Max(options.Prefetch, options.Concurrency), ushort.MaxValue);
        var consumer = broker.Recovery.RunAsync(() => RabbitMqConsumer<T>.StartAsync(broker.Connection, queue, new ConsumerOptions { Prefetch = prefetch }, broker.Serializer, broker.DeadLetters, broker.Delays), $"subscribing to queue '{queue}'", CancellationToken.None).GetAwaiter().GetResult();
        return new RabbitMqSubscription<T>(broker, consumer, handler, options);
    }

    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));

    public Task StopAsync(CancellationToken giveUp)
    {
        lock (_workers)
        {
            return _disposing ??= StopAsync(_broker.ShutdownTimeout, giveUp);
        }
    }

    private async Task StopAsync(TimeSpan timeout, CancellationToken giveUp)
    {
        await _stopping.CancelAsync().ConfigureAwait(false); // no new receives; waits between retries end
        try
        {
            await Task.WhenAll(_workers).WaitAsync(Durations.ForWait(timeout), _broker.Time, giveUp).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException || (ex is OperationCanceledException && giveUp.IsCancellationRequested))
        {
            LogShutdownTimeout(_broker.Logger, Queue, timeout);
            await _abort.CancelAsync().ConfigureAwait(false);
        }

        await _consumer.DisposeAsync().ConfigureAwait(false); // the server requeues what is not settled
        _broker.Forget(this);
    }

    private async Task RunAsync()
    {
        // A worker is not part of whatever the subscriber was doing.
        System.Diagnostics.Activity.Current = null;
        while (true)
        {
            Delivery<T> delivery;
            try
            {
                delivery = await _consumer.ReceiveAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (TopologyException)
            {
                LogQueueDeleted(_broker.Logger, Queue);
                return;
            }
            catch (ObjectDisposedException)
            {
                return; // the channel closed (the broker stopped, or the server closed it): the server requeued the rest
            }

            await HandleAsync(delivery).ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(Delivery<T> delivery)
    {
        var source = (Consuming.IDeliverySource)_consumer;
        var message = (RabbitMqMessage)delivery.SourceHandle;
        while (true)
        {
            Exception? failure = null;
            var activity = Diagnostics.BrokerTracing.Source.HasListeners()
                ? Diagnostics.BrokerTracing.StartConsume(Queue, delivery.Properties, delivery.RoutingKey, delivery.DeliveryCount, process: true)
                : null;
            var started = _broker.Metrics.ProcessStart();
            try
            {
                await _handler(delivery, _abort.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                activity?.Dispose();
                return; // shutdown gave up waiting: the message returns to the queue when the channel closes
            }
#pragma warning disable CA1031 // A handler's failure must become a retry or a dead letter, whatever it is.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failure = ex;
            }

            _broker.Metrics.RecordProcess(Queue, started, failure);
            if (activity is not null)
            {
                if (failure is not null)
                {
                    Diagnostics.BrokerTracing.Fail(activity, failure);
                }

                activity.Dispose();
            }

            if (failure is null)
            {
                await source.AckAsync(message, 0).ConfigureAwait(false); // skipped when the handler settled it
                return;
            }

            if (message.IsSettled)
            {
                return; // the handler settled it before it threw: nothing to retry
            }

            var attempt = delivery.DeliveryCount;
            var messageId = delivery.Properties.MessageId;
            if (!_retry.ShouldRetry(failure) || attempt > _retry.MaxRetries)
            {
                LogDeadLetter(_broker.Logger, Queue, messageId, attempt, failure);
                await source.RejectAsync(message, 0, reason: null, failure).ConfigureAwait(false);
                return;
            }

            var delay = _retry.GetDelay(attempt);
            LogRetry(_broker.Logger, Queue, messageId, attempt, delay, failure);
            if (delay > TimeSpan.Zero && !_ordered)
            {
                try
                {
                    await source.NackAsync(message, 0, requeue: true, delay).ConfigureAwait(false); // back after the delay
                    return;
                }
                catch (Exception ex) when (ex is NotSupportedException or ArgumentOutOfRangeException)
                {
                    // The cascade cannot carry this one (a delay over 8.5 years, a queue name it cannot route): it waits
                    // in place instead, as an ordered subscription's retry does.
                }
            }

            try
            {
                using var held = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, message.Lost);
                await Durations.DelayAsync(delay, _broker.Time, held.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping (the message returns to the queue when the channel closes), or the channel closed already
                // (RabbitMQ closes one that holds a delivery past its consumer_timeout): the server has it again and
                // delivers it anew.
                return;
            }

            delivery = new Delivery<T>(message, _consumer, 0, attempt + 1);
        }
    }

    [LoggerMessage(EventId = 1, EventName = "HandlerRetrying", Level = LogLevel.Warning, Message = "Handler for queue '{Queue}' failed on message {MessageId} (delivery {DeliveryCount}); retrying in {Delay}")]
    private static partial void LogRetry(ILogger logger, string queue, string messageId, int deliveryCount, TimeSpan delay, Exception exception);

    [LoggerMessage(EventId = 2, EventName = "HandlerDeadLettering", Level = LogLevel.Warning, Message = "Handler for queue '{Queue}' failed on message {MessageId} (delivery {DeliveryCount}); not retried further, dead-lettering")]
    private static partial void LogDeadLetter(ILogger logger, string queue, string messageId, int deliveryCount, Exception exception);

    [LoggerMessage(EventId = 4, EventName = "SubscriptionQueueDeleted", Level = LogLevel.Warning, Message = "Queue '{Queue}' was deleted; its subscription stopped")]
    private static partial void LogQueueDeleted(ILogger logger, string queue);

    [LoggerMessage(EventId = 3, EventName = "ShutdownTimedOut", Level = LogLevel.Warning, Message = "Handlers for queue '{Queue}' did not finish within {Timeout}; cancelling them and returning their messages")]
    private static partial void LogShutdownTimeout(ILogger logger, string queue, TimeSpan timeout);
}
