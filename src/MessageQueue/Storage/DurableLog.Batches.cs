namespace MessageQueue.Storage;

/// <summary>How the writer makes its transactions from what is queued (whole units, then background changes in the
/// room left, with moot changes dropped), and how written or failed units are finished.</summary>
internal sealed partial class DurableLog
{
    /// <summary>One transaction: the background changes and the units, units' rows after older inserts.</summary>
    private static StoreBatch Compose(List<StoreUnit> units, StoreBatch background)
    {
        var batch = new StoreBatch();
        batch.MutableInserts.AddRange(background.MutableInserts);
        foreach (var unit in units)
        {
            batch.MustBeDurable |= unit.MustBeDurable;
            foreach (var row in unit.Rows)
            {
                batch.MutableInserts.Add(row.ToStored());
            }

            foreach (var r in unit.Renumbers)
            {
                batch.MutableRenumbered.Add((r.Id, r.NewId));
            }

            batch.MutableDeletes.AddRange(unit.Deletes);
            batch.MutableRemember.AddRange(unit.Remember);
        }

        batch.MutableDeliveries.AddRange(background.MutableDeliveries);
        batch.MutableDeletes.AddRange(background.MutableDeletes);
        batch.MutablePurges.AddRange(background.MutablePurges);
        batch.MutableRemember.AddRange(background.MutableRemember);
        batch.MutableForget.AddRange(background.MutableForget);
        return batch;
    }

    /// <summary>Applies written units to the queues, in order, then completes them; or fails them.</summary>
    private void Finish(List<StoreUnit> units, Exception? failure)
    {
        foreach (var unit in units)
        {
            if (failure is null)
            {
                try
                {
                    unit.Committed?.Invoke();
                }
#pragma warning disable CA1031 // Applying one unit must not stop the writer; the failure is logged.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    _logApplyFailed(unit.Count, ex);
                }

                foreach (var row in unit.Rows)
                {
                    row.Release(); // written: the unit keeps no body alive
                }

                unit.Done.TrySetResult();
            }
            else
            {
                Fail(unit, failure);
            }
        }
    }

    private void Fail(StoreUnit unit, Exception failure)
    {
        try
        {
            unit.Failed?.Invoke(failure);
        }
#pragma warning disable CA1031 // Undoing one unit must not stop the writer; the failure is logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _logApplyFailed(unit.Count, ex);
        }

        unit.Done.TrySetException(failure);
    }

    /// <summary>Closing with a broken store: every unit still queued fails. Called without the gate: failing a unit
    /// takes queue locks, and threads holding a queue lock take the gate to queue changes.</summary>
    private void FailAll(Exception failure)
    {
        List<StoreUnit> left;
        List<TaskCompletionSource> barriers;
        lock (_gate)
        {
            left = [.. _units];
            _units.Clear();
            barriers = _barriers;
            _barriers = [];
        }

        foreach (var unit in left)
        {
            Fail(unit, failure);
        }

        foreach (var barrier in barriers)
        {
            barrier.TrySetException(failure);
        }
    }

    /// <summary>Takes up to <paramref name="room"/> queued background changes (all when they fit), oldest first
    /// (caller holds the gate).</summary>
    private StoreBatch TakeBackground(int room)
    {
        var all = _background;
        if (all.Count <= room)
        {
            _background = new StoreBatch();
            return all;
        }

        var taken = new StoreBatch();
        Move(all.MutableInserts, taken.MutableInserts, ref room);
        Move(all.MutableDeliveries, taken.MutableDeliveries, ref room);
        Move(all.MutableDeletes, taken.MutableDeletes, ref room);
        Move(all.MutablePurges, taken.MutablePurges, ref room);
        Move(all.MutableRemember, taken.MutableRemember, ref room);
        Move(all.MutableForget, taken.MutableForget, ref room);
        return taken;

        static void Move<T>(List<T> from, List<T> to, ref int room)
        {
            var n = Math.Min(room, from.Count);
            to.AddRange(from.GetRange(0, n));
            from.RemoveRange(0, n);
            room -= n;
        }
    }

    /// <summary>Drops changes a delete in the same batch makes moot: delivery counts of deleted rows, and rows
    /// inserted and deleted before either was written (a dead letter consumed at once). The common case of a
    /// delivery followed by its ack then costs one statement, not two.</summary>
    private static void Coalesce(StoreBatch batch)
    {
        if (batch.MutableDeletes.Count == 0 || (batch.MutableDeliveries.Count == 0 && batch.MutableInserts.Count == 0))
        {
            return;
        }

        var deleted = new HashSet<long>(batch.MutableDeletes);
        batch.MutableDeliveries.RemoveAll(d => deleted.Contains(d.Id));
        if (batch.MutableInserts.Count > 0)
        {
            var inserted = new HashSet<long>();
            batch.MutableInserts.RemoveAll(row => deleted.Contains(row.Id) && inserted.Add(row.Id));
            if (inserted.Count > 0)
            {
                batch.MutableDeletes.RemoveAll(inserted.Contains);
            }
        }
    }

    private static void Append(StoreBatch to, StoreBatch from)
    {
        to.MutableInserts.AddRange(from.MutableInserts);
        to.MutableDeliveries.AddRange(from.MutableDeliveries);
        to.MutableDeletes.AddRange(from.MutableDeletes);
        to.MutablePurges.AddRange(from.MutablePurges);
        to.MutableRemember.AddRange(from.MutableRemember);
        to.MutableForget.AddRange(from.MutableForget);
    }

    /// <summary>Starts the AckDelay wait for the changes just queued (a later arming only moves it later; a stale
    /// firing only writes early, never late).</summary>
    private void ArmAckDelay()
    {
        try
        {
            _ackTimer.Change(_ackDelay, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Closing: the writer writes everything queued anyway.
        }
    }

    /// <summary>The AckDelay timer: the changes nobody waits on have waited long enough.</summary>
    private void BackgroundDue()
    {
        lock (_gate)
        {
            if (!_background.IsEmpty)
            {
                _backgroundDue = true;
                Monitor.Pulse(_gate);
            }
        }
    }
}
