using Microsoft.Extensions.Logging;

namespace MessageQueue.Storage;

/// <summary>
/// The broker's one writer to its <see cref="IMessageStore"/>, committing in groups: publishes wait for the batch
/// that carries their messages (whatever arrives while a write is in progress joins the next batch, so many
/// concurrent publishers share one transaction and one sync); acks, delivery counts and dead letters are queued
/// without waiting and ride along. When a write fails, the publishes in it fail with
/// <see cref="MessageStoreException"/> (nothing of them was enqueued) and the queued changes are kept and retried
/// with the next write, so the broker recovers when the store does.
/// </summary>
internal sealed partial class DurableLog : IDisposable
{
    private readonly IMessageStore _store;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly Thread _writer;
    private StoreBatch _background = new();
    private List<StoredMessage> _confirmed = [];
    private List<TaskCompletionSource> _waiters = [];
    private long _nextId;
    private bool _stopping;
    private bool _writing;

    internal DurableLog(IMessageStore store, IMessageSerializer serializer, ILogger logger, long firstId)
    {
        _store = store;
        Serializer = serializer;
        _logger = logger;
        _nextId = firstId;
        _writer = new Thread(Run) { IsBackground = true, Name = "MessageQueue store writer" };
        _writer.Start();
    }

    internal IMessageSerializer Serializer { get; }

    /// <summary>How many batches were written (for tests of group commit).</summary>
    internal long Writes { get; private set; }

    internal long NextId() => Interlocked.Increment(ref _nextId);

    /// <summary>Writes messages that publishers wait on; completes when they are on disk, all in one transaction.</summary>
    internal Task PersistAsync(IReadOnlyList<StoredMessage> rows)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_stopping)
            {
                throw new ObjectDisposedException(nameof(MessageBroker), "The message broker was disposed; nothing can be published any more.");
            }

            _confirmed.AddRange(rows);
            _waiters.Add(done);
            Monitor.Pulse(_gate);
        }

        return done.Task;
    }

    /// <summary>Queues an insert nobody waits on (a dead letter or redriven message entering a durable queue).</summary>
    internal void Insert(StoredMessage row) => Queue(b => b.Inserts.Add(row));

    internal void Delete(long id) => Queue(b => b.Deletes.Add(id));

    internal void Delivered(long id, int count) => Queue(b => b.Deliveries.Add((id, count)));

    private void Queue(Action<StoreBatch> add)
    {
        lock (_gate)
        {
            add(_background);
            Monitor.Pulse(_gate);
        }
    }

    private void Run()
    {
        while (true)
        {
            StoreBatch batch;
            List<StoredMessage> confirmed;
            List<TaskCompletionSource> waiters;
            StoreBatch background;
            lock (_gate)
            {
                while (_background.IsEmpty && _confirmed.Count == 0)
                {
                    if (_stopping)
                    {
                        return;
                    }

                    Monitor.Wait(_gate);
                }

                background = _background;
                confirmed = _confirmed;
                waiters = _waiters;
                _background = new StoreBatch();
                _confirmed = [];
                _waiters = [];
                _writing = true;
            }

            batch = new StoreBatch { MustBeDurable = confirmed.Count > 0 };
            batch.Inserts.AddRange(background.Inserts);
            batch.Inserts.AddRange(confirmed);
            batch.Deliveries.AddRange(background.Deliveries);
            batch.Deletes.AddRange(background.Deletes);
            Exception? failure = null;
            try
            {
                _store.Write(batch);
                Writes++;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                failure = ex as MessageStoreException ?? new MessageStoreException($"The message store failed: {ex.Message} The publish did not happen.", ex);
                LogWriteFailed(_logger, batch.Count, ex);
                lock (_gate)
                {
                    if (_stopping)
                    {
                        _writing = false;
                        Monitor.PulseAll(_gate);
                        foreach (var waiter in waiters)
                        {
                            waiter.TrySetException(failure);
                        }

                        return; // closing with a broken store: what is not written is lost as a crash would lose it
                    }

                    // Keep the changes nobody waits on, ahead of newer ones, for the next write.
                    background.Inserts.AddRange(_background.Inserts);
                    background.Deliveries.AddRange(_background.Deliveries);
                    background.Deletes.AddRange(_background.Deletes);
                    _background = background;
                }
            }
            finally
            {
                lock (_gate)
                {
                    _writing = false;
                    Monitor.PulseAll(_gate);
                }
            }

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

            if (failure is not null)
            {
                lock (_gate)
                {
                    // Do not spin on a broken store: retry queued changes when something new arrives.
                    if (_confirmed.Count == 0 && !_stopping)
                    {
                        Monitor.Wait(_gate, TimeSpan.FromMilliseconds(100));
                    }
                }
            }
        }
    }

    /// <summary>Waits until everything queued so far is written (or failed once).</summary>
    internal void Flush()
    {
        lock (_gate)
        {
            while (_writing || !_background.IsEmpty || _confirmed.Count > 0)
            {
                Monitor.PulseAll(_gate);
                if (!Monitor.Wait(_gate, TimeSpan.FromSeconds(10)))
                {
                    return;
                }
            }
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

        _writer.Join(TimeSpan.FromSeconds(30));
        _store.Dispose();
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Error, Message = "Writing {Count} changes to the message store failed; publishes in the batch failed, other changes will be retried")]
    private static partial void LogWriteFailed(ILogger logger, int count, Exception exception);
}
