using System.Collections.Concurrent;

namespace MessageQueue.Tests.Support;

/// <summary>Holds handlers until released (or cancelled); records starts, completions and cancellations, each with a
/// signal to wait on (a stop cancels running handlers and returns without waiting for them to observe it).</summary>
public sealed class HandlerGate
{
    public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SemaphoreSlim Started { get; } = new(0);

    public ConcurrentQueue<int> Finished { get; } = new();

    public ConcurrentQueue<int> Cancelled { get; } = new();

    /// <summary>Released after each entry of <see cref="Cancelled"/>.</summary>
    public SemaphoreSlim CancelledSignal { get; } = new(0);

    public async Task WaitForCancelledAsync(int count)
    {
        for (var i = 0; i < count; i++)
        {
            await CancelledSignal.WaitAsync().WithSafety();
        }
    }

    /// <summary>A handler's body: waits for <see cref="Open"/> (never, if it is never opened) or its token.</summary>
    public async ValueTask PassAsync(int id, CancellationToken cancellationToken)
    {
        Started.Release();
        try
        {
            await Open.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Cancelled.Enqueue(id);
            CancelledSignal.Release();
            throw;
        }

        Finished.Enqueue(id);
    }
}
