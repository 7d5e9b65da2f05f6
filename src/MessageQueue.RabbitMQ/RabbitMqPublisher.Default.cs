using System.Threading.Tasks.Sources;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// The publish of a message without options (issue 19, point 7): the same message and the same guarantees as the
/// general path, without allocating beyond its body and its id when it can start at once (a slot free, its channel
/// usable and nobody writing on it, the exchange known): its properties, number header, confirm waiter and result
/// are a pooled <see cref="DefaultPublish"/>, which the caller's await gives back. Whatever fails on the way (a nack,
/// a closed channel, a lost connection) is handed to the general path's loop (<see cref="PublishAsync(string, string,
/// ReadOnlyMemory{byte}, BasicProperties, string, bool, CancellationToken, Exception?)"/>) with the same body and
/// properties, so it ends as a publish made there would.
/// </summary>
internal sealed partial class RabbitMqPublisher
{
    private const int PoolSize = 1024;

    private readonly Stack<DefaultPublish> _pool = new();
    private readonly Lock _poolGate = new();
    private long _startedAtOnce;

    /// <summary>Gets how many publishes started at once, without allocating (for tests).</summary>
    internal long StartedAtOnce => Interlocked.Read(ref _startedAtOnce);

    /// <summary>Gets whether a publish to <paramref name="exchange"/> may start at once (a cheap look before the body is
    /// made; <see cref="TryPublishDefault"/> decides).</summary>
    internal bool CanStartDefault(string exchange) => !_disposed && _exchanges.ContainsKey(exchange) && _slots.CurrentCount > 0;

    /// <summary>Starts the publish of <paramref name="body"/> with the properties of a message published without options
    /// (<see cref="RabbitMqProperties.WriteDefault"/>), when it can start at once; not cancellable.</summary>
    /// <param name="exchange">The exchange ("" for a send to a queue).</param>
    /// <param name="routingKey">The routing key (the queue's name for a send).</param>
    /// <param name="body">The serialized message.</param>
    /// <param name="typeName">The message's type name.</param>
    /// <param name="nowTicks">The publish time (UTC ticks).</param>
    /// <param name="send">True for a send to a queue: a return means the queue does not exist (a
    /// <see cref="TopologyException"/>); false for a publish without <c>Mandatory</c> (a result routed to none).</param>
    /// <param name="result">The publish, when it started.</param>
    /// <returns>False when it could not start at once (nothing was sent): the caller takes the general path.</returns>
    internal bool TryPublishDefault(string exchange, string routingKey, byte[] body, string typeName, long nowTicks, bool send, out ValueTask<PublishResult> result)
    {
        result = default;
        if (_disposed || !_exchanges.ContainsKey(exchange))
        {
            return false;
        }

        if (!_slots.Wait(0))
        {
            return false;
        }

        var slot = NextSlot();
        var channel = Volatile.Read(ref _channels[slot]);
        if (channel is not { IsUsable: true })
        {
            _slots.Release();
            OpenLater(slot); // this publish takes the general path; the next in this slot finds it open
            return false;
        }

        var publish = Rent();
        try
        {
            RabbitMqProperties.WriteDefault(publish.Amqp, Queues.MessageIds.New(), typeName, nowTicks);
        }
        catch
        {
            Return(publish); // a type name AMQP cannot carry: refused, nothing kept
            _slots.Release();
            throw;
        }

        publish.Prepare(exchange, routingKey, body, send);
        if (!channel.TryStart(exchange, routingKey, body, publish.Amqp, publish.Number, publish))
        {
            publish.Clear();
            Return(publish);
            _slots.Release();
            return false;
        }

        Interlocked.Increment(ref _startedAtOnce);
        result = publish.Result;
        return true;
    }

    /// <summary>Opens the channel of <paramref name="slot"/> in the background (a failure is the next publish's to
    /// meet on the general path).</summary>
    private void OpenLater(int slot) =>
        _ = ChannelAsync(slot, CancellationToken.None).AsTask().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

    private DefaultPublish Rent()
    {
        lock (_poolGate)
        {
            if (_pool.TryPop(out var publish))
            {
                return publish;
            }
        }

        return new DefaultPublish(this);
    }

    private void Return(DefaultPublish publish)
    {
        lock (_poolGate)
        {
            if (_pool.Count < PoolSize)
            {
                _pool.Push(publish);
            }
        }
    }

    /// <summary>What a send's return means: the queue does not exist.</summary>
    internal static TopologyException NoSuchQueue(string queue, Exception inner) =>
        new($"Queue '{queue}' does not exist on the RabbitMQ server; declare it before sending to it. Nothing was enqueued.", inner);

    /// <summary>A publish without options in flight: its AMQP properties (with the number header's boxed value, which
    /// the channel sets), its confirm waiter and its result, reused once the caller has its result.</summary>
    private sealed class DefaultPublish : ConfirmWaiter, IValueTaskSource<PublishResult>
    {
        private readonly RabbitMqPublisher _owner;
        private ManualResetValueTaskSourceCore<PublishResult> _core = new() { RunContinuationsAsynchronously = true };
        private string _exchange = "";
        private string _routingKey = "";
        private byte[] _body = [];
        private bool _send;
        private int _outcomes; // how many of the two (its outcome, the end of its write) are still to come
        private bool _routed;
        private Exception? _error;

        internal DefaultPublish(RabbitMqPublisher owner)
        {
            _owner = owner;
            Amqp = new BasicProperties { Headers = new Dictionary<string, object?>(1, StringComparer.Ordinal) };
        }

        internal BasicProperties Amqp { get; }

        /// <summary>Gets the boxed number the channel writes into the number header.</summary>
        internal object Number { get; } = 0L;

        internal ValueTask<PublishResult> Result => new(this, _core.Version);

        internal void Prepare(string exchange, string routingKey, byte[] body, bool send)
        {
            (_exchange, _routingKey, _body, _send) = (exchange, routingKey, body, send);
            (Returned, _routed, _error, _outcomes) = (false, false, null, 2);
            Amqp.Headers![RabbitMqConfirmChannel.NumberHeader] = Number; // a retry on the general path replaced it
        }

        internal void Clear() => (_exchange, _routingKey, _body, _error) = ("", "", [], null);

        internal override void Succeed(bool routed)
        {
            _routed = routed;
            Arrived();
        }

        internal override void Fail(Exception error)
        {
            _error = error;
            Arrived();
        }

        internal override void WriteEnded() => Arrived();

        /// <summary>One of the two arrived; the second ends the publish. Until both are in, nothing else may touch its
        /// properties: the client may still be writing them (a confirm can come before the write's task completes,
        /// and a channel's end fails what is outstanding while its write is under way).</summary>
        private void Arrived()
        {
            if (Interlocked.Decrement(ref _outcomes) != 0)
            {
                return;
            }

            _owner._slots.Release();
            if (_error is { } error)
            {
                // The general path's loop takes it from here, on the thread pool (this may run under the channel's lock).
                ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Publish.RetryAsync(state.Error), (Publish: this, Error: error), preferLocal: false);
                return;
            }

            var id = Amqp.MessageId!;
            if (_routed)
            {
                _core.SetResult(new PublishResult(id, routedQueues: 1));
            }
            else if (_send)
            {
                _core.SetException(NoSuchQueue(_routingKey, new UnroutableMessageException(_exchange, _routingKey)));
            }
            else
            {
                _core.SetResult(new PublishResult(id, routedQueues: 0));
            }
        }

        private async Task RetryAsync(Exception error)
        {
            try
            {
                _core.SetResult(await _owner.PublishAsync(_exchange, _routingKey, _body, Amqp, Amqp.MessageId!, mandatory: _send, CancellationToken.None, error).ConfigureAwait(false));
            }
            catch (UnroutableMessageException ex) when (_send)
            {
                _core.SetException(NoSuchQueue(_routingKey, ex));
            }
#pragma warning disable CA1031 // every failure is the caller's, through its await
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _core.SetException(ex);
            }
        }

        PublishResult IValueTaskSource<PublishResult>.GetResult(short token)
        {
            if (token != _core.Version)
            {
                throw new InvalidOperationException("This publish's result was already taken (a ValueTask awaited twice).");
            }

            // Waited for synchronously before it ended (GetAwaiter().GetResult()): wait as a Task-backed result would,
            // never giving it back to the pool while it is outstanding.
            // A loop, not SpinWait.SpinUntil with a lambda: its closure would be allocated on every call.
            var spin = default(SpinWait);
            while (_core.GetStatus(token) == ValueTaskSourceStatus.Pending)
            {
                spin.SpinOnce();
            }

            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                Clear();
                _owner.Return(this);
            }
        }

        ValueTaskSourceStatus IValueTaskSource<PublishResult>.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource<PublishResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
