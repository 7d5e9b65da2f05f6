using RabbitMQ.Client;

namespace MessageQueue.RabbitMq;

/// <summary>Reopening a channel the server closed while the connection stayed up (a consumer's, the delay
/// forwarder's): the closed one is disposed, then opening is tried again with a growing wait (100 ms to 2 s) while the
/// connection is down or recovering, until it succeeds, the owner stops, or a failure is final.</summary>
internal static class RabbitMqReopen
{
    /// <param name="closed">The channel that closed.</param>
    /// <param name="open">Opens the new channel (and consumes on it).</param>
    /// <param name="stopped">Whether the owner was disposed meanwhile.</param>
    /// <param name="final">Whether a failure ends the attempts (after handling it, for example: the queue is gone).</param>
    internal static async Task RunAsync(IChannel closed, Func<Task> open, Func<bool> stopped, Func<Exception, bool> final)
    {
        await Task.Yield(); // not on the client's dispatcher
        try
        {
            await closed.DisposeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The old channel is gone either way.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        var wait = TimeSpan.FromMilliseconds(100);
        while (!stopped())
        {
            try
            {
                await open().ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                if (final(ex) || stopped())
                {
                    return;
                }

                await Task.Delay(wait).ConfigureAwait(false); // the connection is down or recovering: try again
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }
}
