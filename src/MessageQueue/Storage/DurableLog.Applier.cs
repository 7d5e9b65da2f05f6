namespace MessageQueue.Storage;

/// <summary>
/// The applier: a second thread that puts written units in place (their <see cref="StoreUnit.Committed"/>), in the
/// order they were written, while the writer goes on with the next transaction. Barriers complete after the units
/// written before them are applied. When no unit waits to be written and the applier is idle, the writer applies the
/// batch it wrote itself (see <see cref="ApplierIdleAndNothingToWrite"/>).
/// </summary>
internal sealed partial class DurableLog
{
    private readonly object _applyGate = new();
    private readonly Queue<Written> _toApply = new();
    private Thread? _applier;
    private bool _writerDone;

    // Batches written and not applied yet (guarded by _gate): a barrier takes no shortcut while there are any.
    private int _pendingApply;

    /// <summary>A written (or failed) batch: its units, and the barriers that waited for it.</summary>
    private readonly record struct Written(List<StoreUnit> Units, Exception? Failure, List<TaskCompletionSource> Waiters);

    /// <summary>Called after each write (its units handed to the applier) and after each applied batch: units in
    /// flight went down (see <see cref="InFlight"/>).</summary>
    internal Action? Applied { get; set; }

    /// <summary>Whether units (publishes, dead-letter moves, redrives) were submitted and are not in their queues yet:
    /// queued, being written, or written and not applied.</summary>
    internal bool HasUnappliedUnits
    {
        get
        {
            lock (_gate)
            {
                return _units.Count > 0 || _writing || _pendingApply > 0;
            }
        }
    }

    private void StartApplier()
    {
        _applier = new Thread(Apply) { IsBackground = true, Name = "MessageQueue store applier" };
        _applier.Start();
    }

    /// <summary>Hands a written batch to the applier (on the writer thread, before it clears <c>_writing</c>).</summary>
    private void Hand(List<StoreUnit> units, Exception? failure, List<TaskCompletionSource> waiters)
    {
        lock (_gate)
        {
            _pendingApply++;
        }

        lock (_applyGate)
        {
            _toApply.Enqueue(new Written(units, failure, waiters));
            Monitor.Pulse(_applyGate);
        }
    }

    private void Apply()
    {
        while (true)
        {
            Written next;
            lock (_applyGate)
            {
                while (_toApply.Count == 0)
                {
                    if (_writerDone)
                    {
                        return;
                    }

                    Monitor.Wait(_applyGate);
                }

                next = _toApply.Dequeue();
            }

            Finish(next.Units, next.Failure);
            Release(next.Waiters, next.Failure);
            next = default; // nothing of the batch stays reachable while the applier waits

            lock (_gate)
            {
                _pendingApply--;
                Monitor.PulseAll(_gate);
            }

            Applied?.Invoke(); // the units are in their queues: whoever waits for the broker to be idle looks again
        }
    }

    /// <summary>Whether the writer may apply the batch it just wrote itself (on the writer thread, while
    /// <c>_writing</c> is still set): no unit waits to be written, and every batch handed to the applier is applied,
    /// so applying now keeps the order of writing.</summary>
    private bool ApplierIdleAndNothingToWrite()
    {
        lock (_gate)
        {
            return _units.Count == 0 && _pendingApply == 0;
        }
    }

    /// <summary>Completes the barriers that waited for a batch: it was written and applied (or it failed).</summary>
    private static void Release(List<TaskCompletionSource> waiters, Exception? failure)
    {
        foreach (var waiter in waiters)
        {
            if (failure is null)
            {
                waiter.TrySetResult();
            }
            else
            {
                waiter.TrySetException(failure);
            }
        }
    }

    /// <summary>The writer ended: the applier finishes what it was handed, then ends too (on the writer thread).</summary>
    private void StopApplier()
    {
        lock (_applyGate)
        {
            _writerDone = true;
            Monitor.Pulse(_applyGate);
        }

        _applier?.Join();
    }
}
