using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Consuming;

/// <summary>
/// The ordered mode of a subscription (<see cref="SubscriptionOptions{T}.OrderingKey"/>): one reader takes the
/// window in queue order and gives each delivery to its key's lane; a lane handles its messages one at a time,
/// and at most <c>Concurrency</c> handlers run at once across lanes. A delivery waiting in a lane stays unclaimed
/// in the window, so a stopping subscription returns it as never delivered. A failure retries in place, so
/// nothing of the same key can overtake it.
/// </summary>
internal sealed partial class Subscription<T>
{
    private readonly Func<Delivery<T>, string?>? _orderingKey;
    private readonly SemaphoreSlim? _slots;
    private readonly Dictionary<string, Queue<Handoff>> _lanes = new(StringComparer.Ordinal);
    private readonly List<Task> _running = [];

    private async Task RunOrderedAsync()
    {
        System.Diagnostics.Activity.Current = null; // as RunAsync: handlers' spans do not join the subscriber's activity
        var reader = _core.Channel.Reader;
        try
        {
            while (true)
            {
                if (!reader.TryRead(out var handoff))
                {
                    // The window is empty: ask for what is ready, or be marked waiting for the next publish.
                    _core.Queue.RequestDeliveries(_core, wait: true);
                    if (!reader.TryRead(out handoff))
                    {
                        if (!await reader.WaitToReadAsync().ConfigureAwait(false))
                        {
                            return;
                        }

                        continue;
                    }
                }

                Assign(handoff);
            }
        }
        catch (Exception ex) when (ex is ChannelClosedException or TopologyException)
        {
            LogQueueDeleted(_logger, Queue);
        }
        finally
        {
            Task[] running;
            lock (_lanes)
            {
                running = [.. _running];
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }
    }

    /// <summary>Gives a delivery to its key's lane, starting the lane when the key is idle.</summary>
    private void Assign(Handoff handoff)
    {
        var entry = handoff.Entry;
        if (entry.Body is not T)
        {
            _core.TryClaim<T>(handoff); // dead-letters it with the type mismatch
            return;
        }

        string? key;
        try
        {
            key = _orderingKey!(new Delivery<T>(entry, _core, handoff.Tag, handoff.DeliveryCount));
        }
#pragma warning disable CA1031 // A user function's failure dead-letters its message, whatever it is.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            if (_core.TryClaim<T>(handoff))
            {
                var delivery = new Delivery<T>(entry, _core, handoff.Tag, handoff.DeliveryCount);
                LogOrderingKeyFailed(_logger, Queue, delivery.Properties.MessageId, delivery.DeliveryCount, ex);
                delivery.TryFail(ex);
            }

            return;
        }

        lock (_lanes)
        {
            if (key is not null)
            {
                if (_lanes.TryGetValue(key, out var waiting))
                {
                    waiting.Enqueue(handoff);
                    return;
                }

                _lanes[key] = new Queue<Handoff>();
            }

            _running.RemoveAll(static t => t.IsCompleted);
            _running.Add(RunLaneAsync(key, handoff));
        }
    }

    /// <summary>Handles a key's deliveries one after another until its lane is empty.</summary>
    private async Task RunLaneAsync(string? key, Handoff handoff)
    {
        await Task.Yield(); // the reader goes on assigning
        while (true)
        {
            await HandleInOrderAsync(handoff).ConfigureAwait(false);
            if (key is null)
            {
                return;
            }

            lock (_lanes)
            {
                var lane = _lanes[key];
                if (!lane.TryDequeue(out handoff))
                {
                    _lanes.Remove(key);
                    return;
                }
            }
        }
    }

    private async Task HandleInOrderAsync(Handoff handoff)
    {
        var slots = _slots!;
        var running = false;
        await slots.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_core.TryClaim<T>(handoff))
            {
                return; // returned meanwhile (a stop, an ack timeout) or expired in the window
            }

            Interlocked.Increment(ref _orderedRunning); // see InFlight; ended in the finally below
            running = true;
            var count = handoff.DeliveryCount;
            while (true)
            {
                var delivery = new Delivery<T>(handoff.Entry, _core, handoff.Tag, count);
                var activity = Diagnostics.BrokerTracing.StartConsume(Queue, handoff.Entry, count, process: true);
                var started = _broker.Context.Metrics.ProcessStart();
                try
                {
                    await _handler(delivery, _abort.Token).ConfigureAwait(false);
                    EndProcess(activity, started, failure: null); // before the ack: whoever sees it sees the measurement
                    _core.Queue.Ack(_core, handoff.Entry, handoff.Tag); // skipped when the handler settled it
                    return;
                }
                catch (OperationCanceledException ex) when (_abort.IsCancellationRequested)
                {
                    EndProcess(activity, started, ex);
                    return; // shutdown gave up waiting; the message returns to the queue
                }
#pragma warning disable CA1031 // A handler's failure must become a retry or a dead letter, whatever it is.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    EndProcess(activity, started, ex);
                    if (!await WaitToRetryAsync(delivery, handoff, ex).ConfigureAwait(false))
                    {
                        return; // dead-lettered, or stopping while it waited
                    }

                    if (!_core.Queue.RedeliverInPlace(_core, handoff.Entry, handoff.Tag, out count))
                    {
                        return; // no longer ours (returned meanwhile), or dead-lettered at the delivery limit
                    }

                    _core.Queue.Metrics.RecordDelivery(_core.Queue, handoff.Entry.TimestampTicks); // a new delivery, as a claim records one
                }
            }
        }
        finally
        {
            slots.Release();
            if (running)
            {
                Interlocked.Decrement(ref _orderedRunning);
                _broker.Context.InFlight.Signal();
            }
        }
    }

    /// <summary>Records a handler's run: its duration (when listened to) and its span's end.</summary>
    private void EndProcess(System.Diagnostics.Activity? activity, long started, Exception? failure)
    {
        _broker.Context.Metrics.RecordProcess(Queue, started, failure);
        if (activity is not null)
        {
            if (failure is not null)
            {
                Diagnostics.BrokerTracing.Fail(activity, failure);
            }

            activity.Dispose();
        }
    }

    /// <summary>Dead-letters a delivery whose retries are spent (false), or waits the retry policy's delay holding the
    /// key's place (true: redeliver it now). False too when the subscription stops while it waits; the handler slot is
    /// held again on return either way.</summary>
    private async Task<bool> WaitToRetryAsync(Delivery<T> delivery, Handoff handoff, Exception exception)
    {
        if (RetryDelay(delivery, exception) is not { } delay)
        {
            delivery.TryFail(exception);
            return false;
        }

        if (delivery.DeliveryCount < (_core.Queue.Options.MaxDeliveryCount ?? int.MaxValue))
        {
            _core.Queue.Observer?.Requeued(Queue, handoff.Entry, delay); // a retry in place (at the limit it is dead-lettered)
        }

        if (delay <= TimeSpan.Zero)
        {
            return true;
        }

        // Waiting frees the handler slot for other keys; this key's later messages stay behind. While it
        // waits, the delivery is a retry not yet due, not work (as a nacked one with a delay): see InFlight.
        var slots = _slots!;
        slots.Release();
        _core.RetryWaits[handoff.Entry] = Scheduling.Durations.After(_broker.Context.Scheduler.NowTicks, delay.Ticks);
        Interlocked.Decrement(ref _orderedRunning);
        _broker.Context.InFlight.Signal();
        try
        {
            await Scheduling.Durations.DelayAsync(delay, _broker.Time, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await slots.WaitAsync().ConfigureAwait(false);
            return false; // stopping: the message returns to the queue when the subscription leaves it
        }
        finally
        {
            Interlocked.Increment(ref _orderedRunning); // running again before it stops waiting
            _core.RetryWaits.TryRemove(handoff.Entry, out _);
        }

        await slots.WaitAsync().ConfigureAwait(false);
        return true;
    }

    [LoggerMessage(EventId = 5, EventName = "OrderingKeyFailed", Level = LogLevel.Warning, Message = "The ordering key function of the subscription to queue '{Queue}' threw on message {MessageId} (delivery {DeliveryCount}); dead-lettering it")]
    private static partial void LogOrderingKeyFailed(ILogger logger, string queue, string messageId, int deliveryCount, Exception exception);
}
