namespace MessageQueue.Consuming;

/// <summary>A subscription a host can stop on its own shutdown clock.</summary>
internal interface IStopsGracefully
{
    /// <summary>Stops as disposing does (no new deliveries; running handlers may finish; unsettled deliveries return
    /// to the queue), but gives up waiting for running handlers when <paramref name="giveUp"/> is cancelled (the host's
    /// shutdown timeout) or the broker's shutdown timeout passes, whichever is first: their tokens are then cancelled.</summary>
    Task StopAsync(CancellationToken giveUp);
}
