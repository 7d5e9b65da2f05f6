using System.Globalization;
using LiteDB;
using LiteDB.Engine;
using MessageQueue.Storage;

namespace MessageQueue.LiteDb;

/// <summary>
/// An <see cref="IMessageStore"/> on a LiteDB 5 file: a collection of messages (id, queue key, delivery count, due
/// time, transient flag, envelope) with an index that gives each queue's messages in id order, and a collection of
/// remembered deduplication ids. The schema version is LiteDB's <c>UserVersion</c>; a file of a newer version is
/// refused unchanged. The store opens LiteDB's two files itself (<c>name.db</c> and <c>name-log.db</c>, LiteDB's
/// names) unbuffered, so each commit's pages reach the operating system before it returns, and syncs the log after
/// commits that confirm publishes when <see cref="LiteDbSynchronous.Full"/> (LiteDB alone never syncs it).
/// </summary>
public sealed partial class LiteDbMessageStore : IMessageStore
{
    /// <summary>The schema version this code writes and reads (LiteDB's <c>UserVersion</c>).</summary>
    public const int SchemaVersion = 1;

    private const string Messages = "mq_messages";
    private const string Dedup = "mq_dedup";
    private const int PageSize = 8192; // LiteDB's page

    private readonly string _path;
    private readonly string _logPath;
    private readonly string? _password;
    private readonly bool _readOnly;
    private readonly LiteDbStoreOptions _options;
    private readonly string _name;
    private StoreFileOwner? _owner;
    private StoreFile? _data;
    private StoreFile? _log;
    private LiteDatabase? _db;
    private ILiteCollection<BsonDocument>? _messages;
    private ILiteCollection<BsonDocument>? _dedup;
    private Exception? _broken;

    /// <summary>Reads hold it shared; replacing or closing the engine holds it alone, so no read runs on an engine
    /// being closed (LiteDB would leave the read's transaction to a finalizer that throws).</summary>
    private readonly ReaderWriterLockSlim _gate = new(LockRecursionPolicy.NoRecursion);

    /// <summary>Creates a store on a file path or a LiteDB connection string (<c>Filename=...;Password=...;ReadOnly=true</c>;
    /// <c>Connection=shared</c> is refused: one broker owns the file).</summary>
    /// <param name="pathOrConnectionString">A file path, or a connection string (anything with <c>=</c>).</param>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The connection string asks for something this store cannot do.</exception>
    public LiteDbMessageStore(string pathOrConnectionString, LiteDbStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathOrConnectionString);
        _options = options ?? new LiteDbStoreOptions();
        if (_options.OwnerWaitTimeout < TimeSpan.Zero && _options.OwnerWaitTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.OwnerWaitTimeout, "LiteDbStoreOptions.OwnerWaitTimeout must be zero or more, or Timeout.InfiniteTimeSpan to wait as long as it takes.");
        }

        if (_options.CheckpointPages < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.CheckpointPages, "LiteDbStoreOptions.CheckpointPages must be at least 1.");
        }

        var connection = new ConnectionString(pathOrConnectionString.Contains('=', StringComparison.Ordinal) ? pathOrConnectionString : $"Filename={pathOrConnectionString}");
        if (connection.Connection == ConnectionType.Shared)
        {
            throw new ArgumentException("The LiteDB store does not use Connection=shared: one broker owns the file, and shared mode would reopen it for every operation. Leave Connection out or use Connection=direct.", nameof(pathOrConnectionString));
        }

        if (string.IsNullOrWhiteSpace(connection.Filename) || connection.Filename == ":memory:" || connection.Filename == ":temp:")
        {
            throw new ArgumentException($"The LiteDB store needs a file; '{connection.Filename}' is not one (use an in-memory queue instead of a store in memory).", nameof(pathOrConnectionString));
        }

        _path = StoreFileOwner.Canonical(Path.GetFullPath(connection.Filename));
        _logPath = LogFileOf(_path);
        _password = connection.Password;
        _readOnly = connection.ReadOnly;
        _name = $"LiteDB message store '{_path}'"; // the file, never the password
    }

    /// <summary>LiteDB's log file of a data file: <c>name-log.db</c> beside <c>name.db</c> (LiteDB's naming).</summary>
    /// <param name="dataFile">The data file's path.</param>
    /// <returns>The log file's path.</returns>
    internal static string LogFileOf(string dataFile) =>
        Path.Combine(Path.GetDirectoryName(dataFile) ?? "", $"{Path.GetFileNameWithoutExtension(dataFile)}-log{Path.GetExtension(dataFile)}");

    /// <summary>Limits the data file to this many bytes beyond its size when opened (tests of a full disk).</summary>
    internal long? FreeBytesForTests { get; init; }

    /// <summary>Gets how many times the log file was synced since the store opened.</summary>
    internal long LogSyncsForTests => _log?.Syncs ?? 0;

    /// <inheritdoc/>
    public StoreContents Open()
    {
        try
        {
            // Before anything is read or changed (start-up deletes transient rows): one broker per file.
            _owner = StoreFileOwner.Acquire(_path, _options.OwnerWaitTimeout == Timeout.InfiniteTimeSpan ? TimeSpan.MaxValue : _options.OwnerWaitTimeout, _name, "LiteDbStoreOptions.OwnerWaitTimeout");
            if (_readOnly)
            {
                throw new MessageStoreException($"The {_name} could not be opened: the connection string says ReadOnly=true, and a broker writes to its store (publishes, acks, delivery counts).");
            }

            OpenEngine();
            EnsureSchema(_db!);
            _messages!.EnsureIndex("k", "$.k", unique: true);
            _messages.DeleteMany("$.t = true");
            return ReadContents();
        }
        catch (Exception ex) when (ex is not MessageStoreException && !IsFatal(ex))
        {
            Dispose();
            throw new MessageStoreException($"The {_name} could not be opened: {ex.Message}", ex);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Write(StoreBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var db = _db ?? throw (_broken is { } broken
            ? new MessageStoreException($"The {_name} failed and could not be reopened ({broken.Message}); restart the broker once the cause is fixed.", broken)
            : new InvalidOperationException("The store is not open."));
        try
        {
            if (!db.BeginTrans())
            {
                throw new InvalidOperationException("A LiteDB transaction was already open on the writer's thread.");
            }

            WriteChanges(batch);
            db.Commit();
        }
        catch (Exception ex) when (!IsFatal(ex))
        {
            // Nothing of the batch is committed. LiteDB may be left unusable (a commit whose log write failed keeps
            // its transaction, which no rollback can end): start a fresh engine on the files, which holds every
            // committed batch and nothing of this one.
            Reopen(rollback: true);
            throw new MessageStoreException($"Writing to the {_name} failed ({ex.Message}); nothing of the batch was written.", ex);
        }

        // Committed: from here on, a failure must not say that nothing was written.
        if (batch.MustBeDurable && _options.Synchronous == LiteDbSynchronous.Full)
        {
            try
            {
                _log!.Sync();
            }
            catch (Exception ex) when (!IsFatal(ex))
            {
                throw new MessageStoreException(
                    $"The batch was committed to the {_name}, but syncing its log to disk failed ({ex.Message}): it survives a crash of this process, and may not survive a power cut.", ex);
            }
        }

        CheckpointIfDue();
    }

    /// <summary>Copies LiteDB's log into the data file once it holds <see cref="LiteDbStoreOptions.CheckpointPages"/>
    /// pages. The store does it after a commit, not inside it (LiteDB's own automatic checkpoint runs inside
    /// <c>Commit</c>, so its failure would look like the commit's). A failed checkpoint loses nothing (the log still
    /// holds every committed batch): the engine is reopened and the next commit tries again.</summary>
    private void CheckpointIfDue()
    {
        if (_log!.Length < (long)_options.CheckpointPages * PageSize)
        {
            return;
        }

        _gate.EnterWriteLock(); // LiteDB's checkpoint waits for reads to end; new ones wait for it
        try
        {
            _db!.Checkpoint();
        }
        catch (Exception ex) when (!IsFatal(ex))
        {
            _ = ex;
            ReopenLocked(rollback: false);
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    private void OpenEngine()
    {
        _data = StoreFile.Open(_path);
        _log = StoreFile.Open(_logPath);
        var settings = new EngineSettings { DataStream = _data, LogStream = _log, Password = _password, AutoRebuild = false, Collation = Ordinal };
        _db = new LiteDatabase(new LiteEngine(settings), disposeOnClose: true);
        _messages = _db.GetCollection(Messages, BsonAutoId.Int64);
        _dedup = _db.GetCollection(Dedup, BsonAutoId.ObjectId);
        _db.Pragma("CHECKPOINT", 0); // the store checkpoints itself (CheckpointIfDue)
        if (FreeBytesForTests is { } free)
        {
            _db.Pragma("LIMIT_SIZE", _data.Length + _log.Length + free);
        }
    }

    private void Reopen(bool rollback)
    {
        _gate.EnterWriteLock();
        try
        {
            ReopenLocked(rollback);
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    /// <summary>Replaces the engine by a fresh one on the same files (the owner lock is kept): LiteDB recovers every
    /// committed batch from its log. When that fails too, the store is broken until the broker restarts.</summary>
    private void ReopenLocked(bool rollback)
    {
        if (rollback)
        {
            try
            {
                _db?.Rollback();
            }
            catch (Exception ex) when (!IsFatal(ex))
            {
                _ = ex; // the transaction cannot end; it is abandoned with the engine below
            }
        }

        CloseEngine(quietly: true);
        try
        {
            OpenEngine();
        }
        catch (Exception ex) when (!IsFatal(ex))
        {
            _broken = ex;
            CloseEngine(quietly: true);
        }
    }

    /// <summary>Closes the engine and the files; <paramref name="quietly"/> for an engine that failed, which may fail
    /// to close (its files are closed all the same).</summary>
    private void CloseEngine(bool quietly)
    {
        var db = _db;
        _db = null;
        _messages = _dedup = null;
        try
        {
            AbandonTransactions(db);
            db?.Dispose(); // a checkpoint, then the engine closes (the streams are ours)
        }
        catch (Exception ex) when (quietly && !IsFatal(ex))
        {
            _ = ex;
        }
        finally
        {
            _data?.Dispose();
            _log?.Dispose();
            _data = _log = null;
        }
    }

    /// <summary>LiteDB 5.0.21 leaves the transaction of a commit whose write failed registered, and its finalizer throws
    /// on the finalizer thread, which ends the process. Before a failed engine is dropped, its transactions are taken
    /// off its list and their finalizers cancelled (LiteDB's private fields: checked by LiteDbReviewTests).</summary>
    private static void AbandonTransactions(LiteDatabase? db)
    {
        const System.Reflection.BindingFlags Private = System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;
        var engine = db is null ? null : typeof(LiteDatabase).GetField("_engine", Private)?.GetValue(db);
        var monitor = engine?.GetType().GetField("_monitor", Private)?.GetValue(engine);
        if (monitor?.GetType().GetField("_transactions", Private)?.GetValue(monitor) is System.Collections.IDictionary transactions)
        {
            lock (monitor)
            {
                foreach (var transaction in transactions.Values)
                {
#pragma warning disable CA1816 // deliberately another object's finalizer: LiteDB's, which would throw
                    GC.SuppressFinalize(transaction);
#pragma warning restore CA1816
                }

                transactions.Clear();
            }
        }
    }

    private void WriteChanges(StoreBatch batch)
    {
        var messages = _messages!;
        if (batch.Inserts.Count > 0)
        {
            messages.Insert(batch.Inserts.Select(ToDocument));
        }

        foreach (var (id, newId) in batch.Renumbered)
        {
            if (messages.FindById(id) is { } doc)
            {
                // A delayed message that became due joins the tail: a new id (LiteDB's _id cannot change) and ready.
                messages.Delete(id);
                doc["_id"] = newId;
                doc["k"] = Key(QueueOf(doc), newId);
                doc["d"] = 0L;
                messages.Insert(doc);
            }
        }

        foreach (var (id, count) in batch.Deliveries)
        {
            if (messages.FindById(id) is { } doc && doc["c"].AsInt32 < count)
            {
                doc["c"] = count;
                messages.Update(doc);
            }
        }

        foreach (var id in batch.Deletes)
        {
            messages.Delete(id);
        }

        foreach (var (queue, after, upTo) in batch.Purges.Where(p => p.AfterId < p.UpToId))
        {
            messages.DeleteMany(InRange + " AND $.d = 0", Key(queue, after + 1), Key(queue, upTo));
        }

        foreach (var forget in batch.Forget)
        {
            var id = DedupId(forget.Queue, forget.MessageId);
            if (_dedup!.FindById(id) is { } doc && doc["s"].AsInt64 == forget.SeenTicks)
            {
                _dedup.Delete(id);
            }
        }

        foreach (var remember in batch.Remember)
        {
            _dedup!.Upsert(new BsonDocument { ["_id"] = DedupId(remember.Queue, remember.MessageId), ["q"] = remember.Queue, ["m"] = remember.MessageId, ["s"] = remember.SeenTicks });
        }
    }

    /// <summary>Closes the files, then lets them go (another broker may open them). Waits for reads in progress.</summary>
    public void Dispose()
    {
        _gate.EnterWriteLock();
        try
        {
            CloseEngine(quietly: false);
        }
        finally
        {
            _gate.ExitWriteLock();
            _owner?.Dispose(); // after the files, and even when closing failed: the file is never kept
            _owner = null;
        }
    }

    /// <summary>Names the store by its file (never the password), as its error messages do.</summary>
    /// <returns>For example <c>LiteDB message store '/var/app/queue.db'</c>.</returns>
    public override string ToString() => _name;

    private static bool IsFatal(Exception ex) => ex is OutOfMemoryException or StackOverflowException or AccessViolationException;

    /// <summary>Queue names and index keys compare by their characters: LiteDB's default collation (the culture's,
    /// ignoring case) would make "q" and "Q" one queue and ignore the separator in the index key. A new file takes
    /// this collation; LiteDB keeps a file's collation for its life and refuses to open one of another.</summary>
    private static readonly Collation Ordinal = new(CultureInfo.InvariantCulture.LCID, CompareOptions.Ordinal);

    private void EnsureSchema(LiteDatabase db)
    {
        var version = db.UserVersion;
        if (version > SchemaVersion)
        {
            throw new MessageStoreException(
                $"The schema of the {_name} is version {version}, newer than this code understands ({SchemaVersion}); it was written by a newer MessageQueue. Upgrade the package; the file was not changed.");
        }

        if (version < SchemaVersion)
        {
            db.UserVersion = SchemaVersion;
        }
    }
}
