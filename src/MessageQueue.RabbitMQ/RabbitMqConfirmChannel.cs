using System.Runtime.CompilerServices;
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
    private readonly Dictionary<ulong, ConfirmWaiter> _pending = [];
    private ulong _next = 1;
    private ulong _lowest = 1; // no publish below it is outstanding
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
        var channel = await RabbitMqRecovery.CreateChannelWhenRecoveredAsync(connection, new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: false), cancellationToken).ConfigureAwait(false);
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
                WriteFailed(number, ex);
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

    /// <summary>Starts a publish (mandatory) without waiting, when it can be written at once: nobody else is writing
    /// on this channel and it is usable. Its number goes into <paramref name="number"/>, a boxed <see cref="long"/> that
    /// is the value of <paramref name="properties"/>' <see cref="NumberHeader"/> and the caller's alone until
    /// <paramref name="waiter"/> completes; the waiter completes once, with the confirm, the nack, or the failure of the
    /// write or the channel (its caller retries).</summary>
    /// <returns>False when it could not start (nothing was sent, and the waiter is not used).</returns>
    internal bool TryStart(string exchange, string routingKey, ReadOnlyMemory<byte> body, BasicProperties properties, object number, ConfirmWaiter waiter)
    {
        if (!_write.Wait(0))
        {
            return false;
        }

        ulong n;
        lock (_gate)
        {
            if (_broken)
            {
                _write.Release();
                return false;
            }

            n = _next++;
            _pending.Add(n, waiter);
        }

        Unsafe.Unbox<long>(number) = (long)n; // the client copies it into the frame before the write completes
        ValueTask sent;
        try
        {
            sent = _channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, CancellationToken.None);
        }
        catch (Exception ex)
        {
            WriteFailed(n, ex);
            _write.Release();
            waiter.WriteEnded();
            return true;
        }

        if (sent.IsCompletedSuccessfully)
        {
            _write.Release();
            waiter.WriteEnded();
        }
        else
        {
            _ = FinishWriteAsync(sent, n, waiter);
        }

        return true;
    }

    private async Task FinishWriteAsync(ValueTask sent, ulong number, ConfirmWaiter waiter)
    {
        try
        {
            await sent.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            WriteFailed(number, ex);
        }
        finally
        {
            _write.Release();
            waiter.WriteEnded();
        }
    }

    /// <summary>A write failed: whether the server counted it is unknown, so the numbering is too: no one may publish
    /// here again. Its waiter fails, unless a confirm or the channel's end completed it first.</summary>
    private void WriteFailed(ulong number, Exception error)
    {
        ConfirmWaiter? mine;
        lock (_gate)
        {
            _pending.Remove(number, out mine);
        }

        Break(null);
        mine?.Fail(error);
    }

    /// <summary>Completes the publishes a <c>basic.ack</c> or <c>basic.nack</c> names (one, or every one up to it with
    /// <c>multiple</c>), under the lock: each waiter's continuation runs elsewhere.</summary>
    private Task Confirm(ulong number, bool multiple, bool acked)
    {
        lock (_gate)
        {
            if (multiple)
            {
                var last = Math.Min(number, _next - 1);
                for (var n = _lowest; n <= last; n++)
                {
                    if (_pending.Remove(n, out var p))
                    {
                        Complete(p, acked);
                    }
                }

                _lowest = Math.Max(_lowest, last + 1);
            }
            else if (_pending.Remove(number, out var one))
            {
                Complete(one, acked);
                while (_lowest < _next && !_pending.ContainsKey(_lowest))
                {
                    _lowest++;
                }
            }
        }

        return Task.CompletedTask;
    }

    private static void Complete(ConfirmWaiter waiter, bool acked)
    {
        if (acked)
        {
            waiter.Succeed(!waiter.Returned);
        }
        else
        {
            waiter.Fail(new RabbitMqNackException());
        }
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
        List<ConfirmWaiter> failed;
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

    /// <summary>An outstanding publish of <see cref="PublishAsync"/>: completes with whether it was routed, and then
    /// releases its slot, once.</summary>
    private sealed class Pending(SemaphoreSlim? slot) : ConfirmWaiter
    {
        private readonly TaskCompletionSource<bool> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal Task<bool> Task => _completion.Task;

        internal override void Succeed(bool routed)
        {
            if (_completion.TrySetResult(routed))
            {
                slot?.Release();
            }
        }

        internal override void Fail(Exception error)
        {
            if (_completion.TrySetException(error))
            {
                slot?.Release();
            }
        }

        internal void Cancel()
        {
            if (_completion.TrySetCanceled())
            {
                slot?.Release();
            }
        }
    }
}

/// <summary>A publish numbered on a <see cref="RabbitMqConfirmChannel"/>, waiting for its confirm. The channel
/// completes it once: <see cref="Succeed"/> or <see cref="Fail"/>, by whoever took it from the channel's outstanding
/// publishes.</summary>
internal abstract class ConfirmWaiter
{
    /// <summary>Gets or sets whether the server returned it (unroutable); its ack follows. Set under the channel's
    /// lock.</summary>
    internal bool Returned { get; set; }

    /// <summary>The server acked it: routed, or returned before.</summary>
    internal abstract void Succeed(bool routed);

    /// <summary>The server nacked it (<see cref="RabbitMqNackException"/>), or its write or channel failed.</summary>
    internal abstract void Fail(Exception error);

    /// <summary>Its write ended (<see cref="RabbitMqConfirmChannel.TryStart"/>: after <see cref="Succeed"/> or
    /// <see cref="Fail"/> perhaps, which can come first): the client no longer reads its properties or body.</summary>
    internal virtual void WriteEnded()
    {
    }
}

/// <summary>The server nacked a publish (a full <c>reject-publish</c> queue, or an internal error).</summary>
internal sealed class RabbitMqNackException() : Exception("RabbitMQ nacked the publish.");
