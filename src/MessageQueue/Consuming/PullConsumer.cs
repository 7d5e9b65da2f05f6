using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace MessageQueue.Consuming;

/// <summary>A pull consumer: reads its prefetch window through a channel.</summary>
internal sealed class PullConsumer<T> : IConsumer<T>
{
    private readonly ConsumerCore _core;
    private readonly MessageBroker _broker;
    private int _disposed;

    internal PullConsumer(ConsumerCore core, MessageBroker broker)
    {
        _core = core;
        _broker = broker;
    }

    public string Queue => _core.Queue.Name;

    public ValueTask<Delivery<T>> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Delivery<T>>(cancellationToken);
        }

        return TryReceive(out var delivery) ? new ValueTask<Delivery<T>>(delivery) : ReceiveSlowAsync(cancellationToken);
    }

    public bool TryReceive(out Delivery<T> delivery)
    {
        ThrowIfDisposed();
        if (TryReadWindow(out delivery))
        {
            return true;
        }

        // The window is empty: ask the queue for what is ready (publishes do not push to a busy consumer).
        _core.Queue.RequestDeliveries(_core, wait: false);
        return TryReadWindow(out delivery);
    }

    private bool TryReadWindow(out Delivery<T> delivery) => TryReadWindow(out delivery, out _);

    /// <summary>Reads the window until a delivery this consumer's code may have. <paramref name="discarded"/>: whether
    /// deliveries were read and dropped on the way (returned meanwhile, expired, of another type).</summary>
    private bool TryReadWindow(out Delivery<T> delivery, out bool discarded)
    {
        discarded = false;
        var reader = _core.Channel.Reader;
        while (reader.TryRead(out var handoff))
        {
            if (TryAccept(handoff, out delivery))
            {
                return true;
            }

            discarded = true;
        }

        delivery = default;
        return false;
    }

    public IAsyncEnumerable<Delivery<T>> ReadAllAsync(CancellationToken cancellationToken = default) =>
        ConsumerReads.ReadAllAsync(this, () => Volatile.Read(ref _disposed) != 0, cancellationToken);

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _core.Queue.RemoveConsumer(_core);
            _broker.Forget(this);
        }

        return ValueTask.CompletedTask;
    }

    private async ValueTask<Delivery<T>> ReceiveSlowAsync(CancellationToken cancellationToken)
    {
        var reader = _core.Channel.Reader;
        while (true)
        {
            // Mark this consumer waiting (or take what arrived meanwhile), then block until a delivery is written.
            var armed = _core.Queue.RequestDeliveries(_core, wait: true);
            if (TryReadWindow(out var ready, out var discarded))
            {
                return ready;
            }

            if (discarded || !armed)
            {
                // What the queue handed over was dropped (wrong type, expired, returned) or taken by another caller:
                // the hand-over ended the consumer's waiting mark, so ask again before blocking, or the next publish
                // would not wake it.
                continue;
            }

            bool open;
            try
            {
                open = await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException ex) when (ex.InnerException is TopologyException inner)
            {
                throw new TopologyException(inner.Message, ex);
            }

            if (!open)
            {
                ThrowIfDisposed();
                throw new ObjectDisposedException(GetType().Name, $"The consumer of queue '{Queue}' was stopped.");
            }

            if (TryReadWindow(out var delivery))
            {
                // Other callers may be blocked on this consumer too: keep it marked waiting (or fed) for them.
                _core.Queue.RequestDeliveries(_core, wait: true);
                return delivery;
            }
        }
    }

    private bool TryAccept(in Handoff handoff, out Delivery<T> delivery)
    {
        delivery = default;
        if (!_core.TryClaim<T>(handoff))
        {
            return false;
        }

        if (_core.AutoAck)
        {
            _core.Queue.AutoAck(_core, handoff.Entry, handoff.Tag);
        }

        // The receive span marks the moment code took the delivery, in the trace its message carries.
        Diagnostics.BrokerTracing.StartConsume(Queue, handoff.Entry, handoff.DeliveryCount, process: false)?.Dispose();

        delivery = new Delivery<T>(handoff.Entry, _core, handoff.Tag, handoff.DeliveryCount);
        return true;
    }

    private void ThrowIfDisposed() =>
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
