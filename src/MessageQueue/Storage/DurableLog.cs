using Microsoft.Extensions.Logging;

namespace MessageQueue.Storage;

/// <summary>
/// The broker's one writer to its <see cref="IMessageStore"/>, committing in groups. Units (<see cref="StoreUnit"/>:
/// a publish, a dead letter's move, a redrive, a delayed message becoming due) are decided before they are submitted,
/// get their row ids at submission, are never split, and are applied to the queues by this writer after their
/// transaction commits, in submission order; whatever arrives while a write is in progress joins the next batch, so
/// many concurrent publishers share one transaction and one sync. Acks, delivery counts and deletes are queued
/// without waiting and ride along with the next unit's transaction, or are written on their own once they have
/// waited <see cref="StorageOptions.AckDelay"/> (a lost ack causes a redelivery, never a loss). When a write fails,
/// the publishes in it fail with <see cref="MessageStoreException"/> (nothing of them was enqueued), while units
/// nobody waits on and the queued changes are kept and retried with the next write, so the broker recovers when the
/// store does. A transaction holds at most <see cref="StorageOptions.MaxBatchSize"/> changes (a unit is never split).
/// </summary>
internal sealed partial class DurableLog : IDisposable
{
    private readonly IMessageStore _store;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly Thread _writer;
    private readonly int _maxBatch;
    private StoreBatch _background = new();
    private readonly LinkedList<StoreUnit> _units = new();
    private List<TaskCompletionSource> _barriers = [];
    private readonly TimeSpan _ackDelay;
    private readonly ITimer _ackTimer;
    private readonly Action<int, Exception> _logApplyFailed;
    private bool _backgroundDue;
    private long _nextId;
    private bool _stopping;
    private bool _writing;
    private bool _writerEnded;
    private bool _closeOnExit;

    internal DurableLog(IMessageStore store, IMessageSerializer serializer, StorageOptions options, ILogger logger, long firstId, TimeProvider time)
    {
        _store = store;
        Serializer = serializer;
        Options = options;
        _maxBatch = options.MaxBatchSize;
        _ackDelay = options.AckDelay;
        // AckDelay is counted on the broker's clock (a test's manual clock included): a timer marks the changes
        // nobody waits on as due; the writer never measures time itself.
        _ackTimer = time.CreateTimer(static s => ((DurableLog)s!).BackgroundDue(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _logger = logger;
        _nextId = firstId;
        _logApplyFailed = (count, ex) => LogApplyFailed(_logger, count, ex);
        _writer = new Thread(() =>
        {
            try
            {
                Run();
            }
            finally
            {
                StopApplier();
                WriterEnded();
            }
        }) { IsBackground = true, Name = "MessageQueue store writer" };
        StartApplier();
        _writer.Start();
    }

    internal IMessageSerializer Serializer { get; }

    internal StorageOptions Options { get; }

    /// <summary>The store, for reads (which may run on any thread, next to the writer).</summary>
    internal IMessageStore Store => _store;

    /// <summary>Whether the log was closed (the broker disposed).</summary>
    internal bool IsClosed => Volatile.Read(ref _stopping);

    /// <summary>The highest row id given so far: a queue created now owns no row at or below it.</summary>
    internal long LastId
    {
        get
        {
            lock (_gate)
            {
                return _nextId;
            }
        }
    }

    /// <summary>Deletes the ready rows (due time 0) of a queue with ids in (<paramref name="afterId"/>, <paramref name="upToId"/>]:
    /// a lazy queue's disk part, purged or deleted.</summary>
    internal void Purge(string queue, long afterId, long upToId) => Queue(b => b.MutablePurges.Add((queue, afterId, upToId)));

    /// <summary>The broker's instruments: each write's duration and size are recorded when anyone listens.</summary>
    internal Diagnostics.BrokerMetrics? Metrics { get; set; }

    /// <summary>How many batches were written (for tests of group commit).</summary>
    internal long Writes { get; private set; }

    /// <summary>Submits a unit: its new rows get their ids now, in submission order. False when the log is closed
    /// (the broker was disposed): nothing of the unit will be written.</summary>
    internal bool TrySubmit(StoreUnit unit)
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return false;
            }

            if (unit.Rows.Exists(r => r.Owner.IsDeleted))
            {
                // Its queue is gone: nothing of it to write, neither rows nor remembered ids (its join deletes by id).
                var gone = unit.Rows.Where(r => r.Owner.IsDeleted).Select(r => r.Queue).ToHashSet(StringComparer.Ordinal);
                unit.Rows.RemoveAll(r => r.Owner.IsDeleted);
                unit.Remember.RemoveAll(r => gone.Contains(r.Queue));
            }
            foreach (var row in unit.Rows)
            {
                row.Id = ++_nextId;
            }

            foreach (var r in unit.Renumbers)
            {
                r.NewId = ++_nextId;
            }

            _units.AddLast(unit);
            Monitor.Pulse(_gate);
            return true;
        }
    }

    /// <summary>Submits a unit a publisher waits on; throws when the broker was disposed.</summary>
    internal Task SubmitAsync(StoreUnit unit) =>
        TrySubmit(unit)
            ? unit.Done.Task
            : throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed; nothing can be published any more.");

    internal void Delete(long id) => Queue(b => b.MutableDeletes.Add(id));

    internal void Delivered(long id, int count) => Queue(b => b.MutableDeliveries.Add((id, count)));

    internal void Remember(RememberedId id) => Queue(b => b.MutableRemember.Add(id));

    internal void Forget(RememberedId id) => Queue(b => b.MutableForget.Add(id));

    /// <summary>Completes when every change queued before the call is written (faults if that write fails): a
    /// lazy queue waits on it before reading rows that were queued without a waiting publisher.</summary>
    internal Task Barrier()
    {
        lock (_gate)
        {
            if (_background.IsEmpty && _units.Count == 0 && !_writing && _pendingApply == 0)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _barriers.Add(done);
            Monitor.Pulse(_gate);
            return done.Task;
        }
    }

    private void Queue(Action<StoreBatch> add)
    {
        bool arm;
        lock (_gate)
        {
            var first = _background.IsEmpty;
            add(_background);
            arm = first && _ackDelay > TimeSpan.Zero;
            if (first && !arm)
            {
                _backgroundDue = true;
                Monitor.Pulse(_gate);
            }
            else if (_background.Count == _maxBatch)
            {
                Monitor.Pulse(_gate);
            }
        }

        if (arm)
        {
            ArmAckDelay(); // outside the gate: a clock may run its callbacks under its own lock
        }
    }

    /// <summary>Whether the writer has something to write now (caller holds the gate): publishes or barriers
    /// wait, the log is closing, or the changes nobody waits on are many or have waited long enough.</summary>
    private bool MustWrite()
    {
        if (_units.Count > 0 || _barriers.Count > 0)
        {
            return true;
        }

        return !_background.IsEmpty && (_stopping || _backgroundDue || _background.Count >= _maxBatch);
    }

    private void Run()
    {
        while (true)
        {
            var units = new List<StoreUnit>();
            var waiters = new List<TaskCompletionSource>();
            if (TakeNext(units, waiters) is not { } background)
            {
                return; // nothing left, and the applier has nothing left that could queue more (it pulses the gate)
            }

            Coalesce(background);
            var batch = Compose(units, background);
            Exception? failure = null;
            try
            {
                if (!batch.IsEmpty)
                {
                    var started = Metrics is { TimesCommits: true } ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
                    _store.Write(batch);
                    if (started != 0)
                    {
                        Metrics!.RecordCommit(started, batch.Count);
                    }

                    Writes++;
                    LastWriteFailure = null;
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                failure = ex as MessageStoreException ?? new MessageStoreException($"The message store failed: {ex.Message} The publish did not happen.", ex);
                LastWriteFailure = failure;
                LogWriteFailed(_logger, batch.Count, ex);
                KeepForRetry(units, background);
            }

            // The applier puts the units in place (in order) while this thread writes the next batch; a barrier
            // taken meanwhile waits for it (see _pendingApply). When nothing waits to be written and the applier has
            // nothing left, this thread applies them itself (one thread hop less for a lone publisher's confirm).
            batch.MutableInserts.Clear(); // written or failed: the batch keeps no body alive while the writer waits
            if (ApplierIdleAndNothingToWrite())
            {
                Finish(units, failure);
                Release(waiters, failure);
            }
            else
            {
                Hand(units, failure, waiters);
            }

            lock (_gate)
            {
                _writing = false;
                Monitor.PulseAll(_gate);
            }

            Applied?.Invoke(); // units taken by this write are handed on (or failed): whoever waits for idle looks again
            if (failure is not null && PauseAfterFailure())
            {
                FailAll(failure);
                return;
            }
        }
    }

    /// <summary>Waits until there is something to write, then takes it: whole units up to the batch limit (at least
    /// one), the changes nobody waits on in the room left, and the barriers everything before them is in. Null when
    /// the log is closing and nothing is left.</summary>
    private StoreBatch? TakeNext(List<StoreUnit> units, List<TaskCompletionSource> waiters)
    {
        lock (_gate)
        {
            while (!MustWrite())
            {
                if (_stopping && _background.IsEmpty && _units.Count == 0 && _pendingApply == 0)
                {
                    return null;
                }

                Monitor.Wait(_gate);
            }

            var count = 0;
            while (_units.First is { } next && (units.Count == 0 || count + next.Value.Count <= _maxBatch))
            {
                _units.RemoveFirst();
                units.Add(next.Value);
                count += next.Value.Count;
            }

            var background = TakeBackground(Math.Max(0, _maxBatch - count));
            if (_background.IsEmpty)
            {
                _backgroundDue = false; // what is queued from now on waits its own AckDelay
            }

            if (_background.IsEmpty && _units.Count == 0)
            {
                waiters.AddRange(_barriers); // everything queued before them is in this batch
                _barriers = [];
            }

            _writing = true;
            return background;
        }
    }

    /// <summary>After a failed write: keeps what nobody waits on, ahead of newer changes, and the units to retry, for
    /// the next write (unless closing with a broken store: what is not written is then lost as a crash would lose it).
    /// The units not kept fail.</summary>
    private void KeepForRetry(List<StoreUnit> units, StoreBatch background)
    {
        var rearm = false;
        lock (_gate)
        {
            if (!_stopping)
            {
                Append(background, _background);
                _background = background;
                _backgroundDue = _ackDelay == TimeSpan.Zero;
                rearm = !_backgroundDue;
                for (var i = units.Count - 1; i >= 0; i--)
                {
                    if (units[i].Retry)
                    {
                        _units.AddFirst(units[i]);
                    }
                }

                units.RemoveAll(u => u.Retry);
            }
        }

        if (rearm)
        {
            ArmAckDelay(); // the kept changes wait another AckDelay (or the next publish)
        }
    }

    /// <summary>Writes what is queued, stops the writer and closes the store.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            Monitor.PulseAll(_gate);
        }

        _ackTimer.Dispose(); // the writer writes everything queued now, due or not
        if (_writer.Join(CloseTimeout))
        {
            _store.Dispose();
            return;
        }

        // The writer is still in a write (a store that hangs): the store is closed by the writer when it ends, never
        // under it.
        lock (_gate)
        {
            if (!_writerEnded)
            {
                _closeOnExit = true;
                return;
            }
        }

        _store.Dispose();
    }

    /// <summary>How long <see cref="Dispose"/> waits for the writer before leaving the store to it (tests shorten it).</summary>
    internal TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The writer thread's last act: it closes the store if <see cref="Dispose"/> stopped waiting for it.</summary>
    private void WriterEnded()
    {
        bool close;
        lock (_gate)
        {
            _writerEnded = true;
            close = _closeOnExit;
        }

        if (close)
        {
            _store.Dispose();
        }
    }

    [LoggerMessage(EventId = 20, EventName = "StoreWriteFailed", Level = LogLevel.Error, Message = "Writing {Count} changes to the message store failed; publishes in the batch failed, other changes will be retried")]
    private static partial void LogWriteFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(EventId = 28, EventName = "StoreApplyFailed", Level = LogLevel.Error, Message = "Applying {Count} written changes to their queues failed")]
    private static partial void LogApplyFailed(ILogger logger, int count, Exception exception);
}
