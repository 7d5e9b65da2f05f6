using System.Runtime.CompilerServices;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>
/// Whether the connection is up, as the client's automatic recovery sees it: down from the moment it drops (not closed
/// by this process) until the client has reconnected and recovered its channels, consumers and the topology it
/// declared. Publishes and management calls that meet a dropped connection wait here, up to
/// <see cref="RabbitMqOptions.RecoveryTimeout"/>, then fail with a <see cref="MessageQueueException"/> that says so.
/// </summary>
internal sealed class RabbitMqRecovery
{
    private readonly IConnection _connection;
    private readonly TimeSpan _timeout;
    private readonly Lock _gate = new();
    private TaskCompletionSource _up = NewUp();
    private volatile bool _stopped;

    /// <summary>The recovery watching each connection, for <see cref="CreateChannelWhenRecoveredAsync"/>.</summary>
    private static readonly ConditionalWeakTable<IConnection, RabbitMqRecovery> Watching = new();

    internal RabbitMqRecovery(IConnection connection, TimeSpan timeout)
    {
        _connection = connection;
        _timeout = timeout;
        _up.TrySetResult();
        Watching.TryAdd(connection, this);
        connection.ConnectionShutdownAsync += (_, e) =>
        {
            if (e.Initiator != ShutdownInitiator.Application)
            {
                lock (_gate)
                {
                    if (_up.Task.IsCompleted && !_stopped)
                    {
                        _up = NewUp();
                    }
                }
            }

            return Task.CompletedTask;
        };
        connection.RecoverySucceededAsync += (_, _) =>
        {
            lock (_gate)
            {
                _up.TrySetResult();
            }

            return Task.CompletedTask;
        };
    }

    /// <summary>When a wait for a connection that drops now must give up.</summary>
    internal DateTime Deadline() => _timeout >= DateTime.MaxValue - DateTime.UtcNow ? DateTime.MaxValue : DateTime.UtcNow + _timeout;

    /// <summary>Gets whether the connection is up and recovered.</summary>
    internal bool IsUp => _connection.IsOpen && _up.Task.IsCompleted;

    /// <summary>Whether <paramref name="ex"/> means the connection dropped (rather than the server refusing something).</summary>
    internal bool IsConnectionLoss(Exception ex) =>
        !IsUp && !_stopped && ex is global::RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException or global::RabbitMQ.Client.Exceptions.OperationInterruptedException or ObjectDisposedException;

    /// <summary>Waits until the connection is back, or fails saying what could not be done once
    /// <paramref name="deadline"/> passes.</summary>
    internal async Task WaitAsync(DateTime deadline, string what, Exception? cause, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task up;
            lock (_gate)
            {
                up = _up.Task;
            }

            var left = deadline - DateTime.UtcNow;
            if (_stopped || left <= TimeSpan.Zero)
            {
                throw Down(what, cause);
            }

            try
            {
                await up.WaitAsync(left < TimeSpan.FromDays(1) ? left : TimeSpan.FromDays(1), cancellationToken).ConfigureAwait(false); // a timer takes at most ~49 days
            }
            catch (TimeoutException)
            {
                continue; // the deadline decides
            }

            if (_connection.IsOpen)
            {
                return;
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false); // the drop is not reported yet
        }
    }

    /// <summary>
    /// Opens a channel on <paramref name="connection"/>, first waiting (up to the recovery timeout) while the client is
    /// recovering it. Every channel of the transport is opened here. A channel opened once the connection is open
    /// again but before the client recovered its channels and consumers is recorded by the client and then "recovered"
    /// a second time: its deliveries come on one server channel and its acks go to another (406 unknown delivery tag),
    /// so the server closes it and redelivers its whole prefetch window, and at worst the client's recovery fails.
    /// </summary>
    internal static async Task<IChannel> CreateChannelWhenRecoveredAsync(IConnection connection, CreateChannelOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (Watching.TryGetValue(connection, out var recovery) && recovery.Recovering)
        {
            await recovery.WaitAsync(recovery.Deadline(), "opening a channel", cause: null, cancellationToken).ConfigureAwait(false);
        }

        return await connection.CreateChannelAsync(options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether the connection dropped and the client has not finished recovering it.</summary>
    private bool Recovering
    {
        get
        {
            lock (_gate)
            {
                return !_up.Task.IsCompleted;
            }
        }
    }

    /// <summary>Runs <paramref name="operation"/>; while the connection is down, waits for it (up to the recovery
    /// timeout) and runs it again.</summary>
    internal async Task<T> RunAsync<T>(Func<Task<T>> operation, string what, CancellationToken cancellationToken)
    {
        var deadline = Deadline();
        while (true)
        {
            try
            {
                return await operation().ConfigureAwait(false);
            }
            catch (Exception ex) when (IsConnectionLoss(ex))
            {
                await WaitAsync(deadline, what, ex, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Ends every wait: the broker is stopping.</summary>
    internal void Stop()
    {
        lock (_gate)
        {
            _stopped = true;
            _up.TrySetResult();
        }
    }

    /// <summary>Whether <paramref name="ex"/> is this class's: the connection was down (or the broker stopped) for
    /// longer than the wait, which says nothing about the message itself.</summary>
    internal static bool IsDown(Exception ex) => ex.Data.Contains(DownKey);

    private const string DownKey = "MessageQueue.RabbitMq.ConnectionDown";

    private MessageQueueException Down(string what, Exception? cause)
    {
        var ex = _stopped
            ? new MessageQueueException($"The broker stopped while {what} waited for the RabbitMQ connection.", cause)
            : new MessageQueueException($"The connection to the RabbitMQ server is down and did not come back within {_timeout} (RabbitMqOptions.RecoveryTimeout): {what} failed. Nothing confirmed was lost; what failed may have reached the server.", cause);
        ex.Data[DownKey] = true;
        return ex;
    }

    private static TaskCompletionSource NewUp() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
