using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace MessageQueue.RabbitMq;

/// <summary>
/// A channel in confirm mode whose confirms the transport tracks itself, so that any number of callers can have
/// publishes outstanding on it (RabbitMQ.Client 7's own tracking failed under concurrent publishes on one channel:
/// rabbitmq-dotnet-client#1818, #1924). Publishes are written one at a time, each numbered as the server numbers them
/// (1, 2, ... from <c>confirm.select</c>) and carrying its number in a header (<see cref="NumberHeader"/>);
/// <c>basic.ack</c> and <c>basic.nack</c> (one, or all up to a number with <c>multiple</c>) complete them; a
/// <c>basic.return</c>, which comes before its message's ack, marks the publish its header names as unrouted. When the
/// channel closes, every outstanding publish fails with the reason and the channel is never used again (its numbering
/// is over). Each publish holds a slot of the caller's until it completes (confirmed, nacked or failed), whether or not
/// the caller still waits for it.
/// </summary>
internal sealed class RabbitMqConfirmChannel : IAsyncDisposable
{
    /// <summary>The header that carries a publish's number, to match a return to its publish exactly (the transport's;
    /// not shown to the application).</summary>
    internal const string NumberHeader = "x-mq-publish-seq";

    private readonly IChannel _channel;
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly Lock _gate = new();
    private readonly SortedDictionary<ulong, Pending> _pending = [];
    private ulong _next = 1;
    private ShutdownEventArgs? _closed;
    private volatile bool _broken;

    private RabbitMqConfirmChannel(IChannel channel)
    {
        _channel = channel;
        channel.BasicAcksAsync += (_, e) => Confirm(e.DeliveryTag, e.Multiple, acked: true);
        channel.BasicNacksAsync += (_, e) => Confirm(e.DeliveryTag, e.Multiple, acked: false);
        channel.BasicReturnAsync += OnReturnAsync;
        channel.ChannelShutdownAsync += (_, e) =>
        {
            Break(e);
            return Task.CompletedTask;
        };
    }

    /// <summary>Gets whether the channel can take publishes (it is open and its numbering is known).</summary>
    internal bool IsUsable => !_broken && _channel.IsOpen;

    /// <summary>Opens a channel in confirm mode on <paramref name="connection"/>.</summary>
    internal static async Task<RabbitMqConfirmChannel> OpenAsync(IConnection connection, CancellationToken cancellationToken)
    {
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: false), cancellationToken).ConfigureAwait(false);
        return new RabbitMqConfirmChannel(channel);
    }

    /// <summary>Publishes (mandatory) and returns when the server confirmed it: true when it was routed, false when the
    /// server returned it.</summary>
    /// <exception cref="RabbitMqNackException">The server nacked it.</exception>
    /// <exception cref="AlreadyClosedException">The channel closed before the confirm (the reason says why); the message
    /// may or may not have been routed.</exception>
    /// <remarks>The caller's <c>slot</c> is released once when the publish completes, however it ends.</remarks>
    internal async Task<bool> PublishAsync(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties properties, SemaphoreSlim? slot, CancellationToken cancellationToken)
    {
        var pending = new Pending(slot);
        try
        {
            await _write.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            pending.Cancel(); // nothing was sent
            throw;
        }

        try
        {
            ulong number;
            lock (_gate)
            {
                if (_broken)
                {
                    throw new AlreadyClosedException(_closed ?? new ShutdownEventArgs(ShutdownInitiator.Library, 0, "the channel's publish numbering was lost"));
                }

                number = _next++;
                _pending.Add(number, pending);
            }

            // Callers make the properties for each publish (a retry of the same publish gets its new number here).
            (properties.Headers ??= new Dictionary<string, object?>(1, StringComparer.Ordinal))[NumberHeader] = (long)number;

            try
            {
                // Not cancellable once begun: a frame written halfway would break the channel for every caller.
                await _channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Whether the server counted it is unknown now, so the numbering is too: no one may publish here again.
                lock (_gate)
                {
                    _pending.Remove(number);
                }

                Break(null);
                pending.Fail(ex);
            }
        }
        catch (Exception ex) when (!pending.Task.IsCompleted)
        {
            pending.Fail(ex); // broken before it was numbered
            throw;
        }
        finally
        {
            _write.Release();
        }

        return await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task Confirm(ulong number, bool multiple, bool acked)
    {
        List<Pending> done = [];
        lock (_gate)
        {
            if (multiple)
            {
                while (_pending.Count > 0 && _pending.First() is var (first, p) && first <= number)
                {
                    _pending.Remove(first);
                    done.Add(p);
                }
            }
            else if (_pending.Remove(number, out var one))
            {
                done.Add(one);
            }
        }

        foreach (var p in done)
        {
            if (acked)
            {
                p.Succeed(!p.Returned);
            }
            else
            {
                p.Fail(new RabbitMqNackException());
            }
        }

        return Task.CompletedTask;
    }

    private Task OnReturnAsync(object sender, BasicReturnEventArgs e)
    {
        if (e.BasicProperties.Headers is { } headers && headers.TryGetValue(NumberHeader, out var value) && value is long number)
        {
            lock (_gate)
            {
                if (_pending.TryGetValue((ulong)number, out var p))
                {
                    p.Returned = true; // its ack follows
                }
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>Marks the channel unusable and fails what is outstanding on it.</summary>
    private void Break(ShutdownEventArgs? reason)
    {
        List<Pending> failed;
        lock (_gate)
        {
            _broken = true;
            _closed ??= reason;
            failed = [.. _pending.Values];
            _pending.Clear();
        }

        var error = new AlreadyClosedException(_closed ?? new ShutdownEventArgs(ShutdownInitiator.Library, 0, "a publish could not be written"));
        foreach (var p in failed)
        {
            p.Fail(error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Break(null);
        try
        {
            await _channel.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or OperationCanceledException)
        {
            // Closed first by the server or the network.
        }

        await _channel.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>An outstanding publish: completes with whether it was routed, and then releases its slot, once.</summary>
    private sealed class Pending(SemaphoreSlim? slot) : TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        internal bool Returned { get; set; }

        internal void Succeed(bool routed)
        {
            if (TrySetResult(routed))
            {
                slot?.Release();
            }
        }

        internal void Fail(Exception error)
        {
            if (TrySetException(error))
            {
                slot?.Release();
            }
        }

        internal void Cancel()
        {
            if (TrySetCanceled())
            {
                slot?.Release();
            }
        }
    }
}

/// <summary>The server nacked a publish (a full <c>reject-publish</c> queue, or an internal error).</summary>
internal sealed class RabbitMqNackException() : Exception("RabbitMQ nacked the publish.");
