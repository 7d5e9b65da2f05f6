namespace MessageQueue.Storage;

/// <summary>A store that fails: what the health check sees, and the pause before the writer tries again.</summary>
internal sealed partial class DurableLog
{
    private volatile Exception? _lastWriteFailure;

    /// <summary>The failure of the last write to the store, or null when it succeeded (for health checks: a store that
    /// fails now is unhealthy until a write succeeds again).</summary>
    internal Exception? LastWriteFailure
    {
        get => _lastWriteFailure;
        private set => _lastWriteFailure = value;
    }

    /// <summary>Does not spin on a broken store: pauses before retrying queued changes, or until a publish arrives.
    /// True when the log is closing instead (the caller fails what is left).</summary>
    private bool PauseAfterFailure()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return true;
            }

            Monitor.Wait(_gate, TimeSpan.FromMilliseconds(100));
            return false; // a close during the pause is seen by the next TakeNext
        }
    }
}
