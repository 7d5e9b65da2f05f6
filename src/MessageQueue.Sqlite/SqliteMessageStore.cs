using MessageQueue.Storage;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite;

/// <summary>
/// The built-in <see cref="IMessageStore"/>: one SQLite database in WAL mode, a table of messages and one of
/// remembered deduplication ids. The schema is created on first use, versioned and upgraded in place; a database
/// with a newer schema than this code understands is refused with a clear error instead of being changed. Writes
/// use one connection; reads (lazy queues refilling their windows) use a second, so they never wait for a sync.
/// </summary>
public sealed partial class SqliteMessageStore : IMessageStore
{
    /// <summary>The schema version this code writes and reads.</summary>
    public const int SchemaVersion = 2;

    private const long TransientFlag = 1;
    private const int PageSize = 4096;

    private readonly string _connectionString;
    private readonly string _name;
    private readonly string? _lockedPath;
    private StoreFileOwner? _owner;
    private readonly SqliteStoreOptions _options;
    private readonly Lock _readGate = new();
    private SqliteConnection? _connection;
    private SqliteConnection? _reader;
    private SqliteCommand? _insert;
    private SqliteCommand? _delete;
    private SqliteCommand? _deliver;
    private SqliteCommand? _renumber;
    private SqliteCommand? _remember;
    private SqliteCommand? _forget;
    private SqliteCommand? _readOne;
    private bool? _synced;

    /// <summary>Creates a store on a database file or connection string.</summary>
    /// <param name="pathOrConnectionString">A file path, or a connection string (anything with <c>=</c>).</param>
    /// <param name="options">The options.</param>
    public SqliteMessageStore(string pathOrConnectionString, SqliteStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pathOrConnectionString);
        var builder = pathOrConnectionString.Contains('=', StringComparison.Ordinal)
            ? new SqliteConnectionStringBuilder(pathOrConnectionString)
            : new SqliteConnectionStringBuilder { DataSource = pathOrConnectionString };
        builder.Pooling = false; // the broker holds its connections; closing them releases the file
        _options = options ?? new SqliteStoreOptions();
        if (_options.BusyTimeout < TimeSpan.Zero || _options.BusyTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.BusyTimeout, "SqliteStoreOptions.BusyTimeout must be between zero and about 24.8 days (int.MaxValue milliseconds), as SQLite's busy_timeout.");
        }

        if (_options.OwnerWaitTimeout < TimeSpan.Zero && _options.OwnerWaitTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.OwnerWaitTimeout, "SqliteStoreOptions.OwnerWaitTimeout must be zero or more, or Timeout.InfiniteTimeSpan to wait as long as it takes.");
        }

        // Microsoft.Data.Sqlite retries a locked database for the command timeout (30 s by default), on top of
        // SQLite's busy_timeout: make both the configured wait.
        builder.DefaultTimeout = (int)Math.Max(1, Math.Ceiling(_options.BusyTimeout.TotalSeconds));
        _connectionString = builder.ToString();
        _lockedPath = builder.Mode == SqliteOpenMode.Memory ? null : DatabaseFile.Resolve(builder.DataSource);
        _name = $"SQLite message store '{_lockedPath ?? builder.DataSource}'"; // a file by its canonical path, else as given
    }

    /// <summary>Limits the database to this many pages beyond what it holds when opened (tests of a full disk).</summary>
    internal int? FreePagesForTests { get; init; }

    /// <inheritdoc/>
    public StoreContents Open()
    {
        try
        {
            if (_lockedPath is not null)
            {
                // Before anything is read or changed (start-up deletes transient rows): one broker per file.
                _owner = StoreFileOwner.Acquire(_lockedPath, _options.OwnerWaitTimeout == Timeout.InfiniteTimeSpan ? TimeSpan.MaxValue : _options.OwnerWaitTimeout, _name, "SqliteStoreOptions.OwnerWaitTimeout");
            }

            _connection = new SqliteConnection(_connectionString);
            _connection.Open();
            Execute($"PRAGMA busy_timeout = {(int)_options.BusyTimeout.TotalMilliseconds};");
            Execute("PRAGMA journal_mode = WAL;");
            EnsureSchema();
            if (FreePagesForTests is { } free)
            {
                // A disk that is (almost) full, for the store conformance suite: SQLite fails a write that needs more.
                using var count = _connection.CreateCommand();
                count.CommandText = "PRAGMA page_count;";
                Execute($"PRAGMA max_page_count = {(long)count.ExecuteScalar()! + free};");
            }

            Execute($"DELETE FROM mq_messages WHERE flags & {TransientFlag} <> 0;");
            _reader = new SqliteConnection(_connectionString);
            _reader.Open();
            Execute($"PRAGMA busy_timeout = {(int)_options.BusyTimeout.TotalMilliseconds};", connection: _reader);
            return ReadContents();
        }
        catch (SqliteException ex)
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
        var connection = _connection ?? throw new InvalidOperationException("The store is not open.");
        try
        {
            var sync = batch.MustBeDurable && _options.Synchronous == SqliteSynchronous.Full;
            if (_synced != sync)
            {
                Execute(sync ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = NORMAL;");
                _synced = sync;
            }

            using var transaction = connection.BeginTransaction();
            WriteInserts(batch.Inserts, transaction);
            WriteUpdates(batch, transaction);
            WriteDeletes(batch, connection, transaction);
            WriteIds(ref _forget, "DELETE FROM mq_dedup WHERE queue = $queue AND message_id = $id AND seen = $seen;", batch.Forget, transaction);
            WriteIds(ref _remember, "INSERT INTO mq_dedup (queue, message_id, seen) VALUES ($queue, $id, $seen) ON CONFLICT (queue, message_id) DO UPDATE SET seen = excluded.seen;", batch.Remember, transaction);
            transaction.Commit();
        }
        catch (SqliteException ex)
        {
            throw new MessageStoreException($"Writing to the {_name} failed ({ex.Message}); nothing of the batch was written.", ex);
        }
    }

    private void WriteInserts(IReadOnlyList<StoredMessage> inserts, SqliteTransaction transaction)
    {
        var insert = Prepare(ref _insert, "INSERT INTO mq_messages (id, queue, delivery_count, due, flags, envelope) VALUES ($id, $queue, $count, $due, $flags, $envelope);", transaction, "$id", "$queue", "$count", "$due", "$flags", "$envelope");
        foreach (var m in inserts)
        {
            insert.Parameters[0].Value = m.Id;
            insert.Parameters[1].Value = m.Queue;
            insert.Parameters[2].Value = m.DeliveryCount;
            insert.Parameters[3].Value = m.DueTicks;
            insert.Parameters[4].Value = m.Transient ? TransientFlag : 0L;
            insert.Parameters[5].Value = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(m.Envelope, out var whole) && whole.Offset == 0 && whole.Count == whole.Array!.Length
                ? whole.Array
                : m.Envelope.ToArray();
            insert.ExecuteNonQuery();
        }
    }

    /// <summary>Renumbered rows (delayed ones joining the tail) and delivery counts (which only grow).</summary>
    private void WriteUpdates(StoreBatch batch, SqliteTransaction transaction)
    {
        var renumber = Prepare(ref _renumber, "UPDATE mq_messages SET id = $new, due = 0 WHERE id = $id;", transaction, "$id", "$new");
        foreach (var (id, newId) in batch.Renumbered)
        {
            renumber.Parameters[0].Value = id;
            renumber.Parameters[1].Value = newId;
            renumber.ExecuteNonQuery();
        }

        var deliver = Prepare(ref _deliver, "UPDATE mq_messages SET delivery_count = $count WHERE id = $id AND delivery_count < $count;", transaction, "$id", "$count");
        foreach (var (id, count) in batch.Deliveries)
        {
            deliver.Parameters[0].Value = id;
            deliver.Parameters[1].Value = count;
            deliver.ExecuteNonQuery();
        }
    }

    private void WriteDeletes(StoreBatch batch, SqliteConnection connection, SqliteTransaction transaction)
    {
        var delete = Prepare(ref _delete, "DELETE FROM mq_messages WHERE id = $id;", transaction, "$id");
        foreach (var id in batch.Deletes)
        {
            delete.Parameters[0].Value = id;
            delete.ExecuteNonQuery();
        }

        foreach (var (queue, after, upTo) in batch.Purges)
        {
            using var purge = CreateCommand(connection, "DELETE FROM mq_messages WHERE queue = $queue AND due = 0 AND id > $after AND id <= $upto;", "$queue", "$after", "$upto");
            purge.Transaction = transaction;
            purge.Parameters[0].Value = queue;
            purge.Parameters[1].Value = after;
            purge.Parameters[2].Value = upTo;
            purge.ExecuteNonQuery();
        }
    }

    /// <summary>Closes the database, then lets it go (another broker may open it).</summary>
    public void Dispose()
    {
        try
        {
            _insert?.Dispose();
            _delete?.Dispose();
            _deliver?.Dispose();
            _renumber?.Dispose();
            _remember?.Dispose();
            _forget?.Dispose();
            _insert = _delete = _deliver = _renumber = _remember = _forget = null;
            _connection?.Dispose();
            _connection = null;
            lock (_readGate)
            {
                _readOne?.Dispose();
                _readOne = null;
                _reader?.Dispose();
                _reader = null;
            }
        }
        finally
        {
            _owner?.Dispose(); // after the connections, and even when closing one failed: the file is never kept
            _owner = null;
        }
    }

    /// <summary>Names the store by its database file (never the rest of the connection string, which may hold a
    /// password), as its error messages do.</summary>
    /// <returns>For example <c>SQLite message store '/var/app/queue.db'</c>.</returns>
    public override string ToString() => _name;

    /// <summary>A failure of SQLite, or a row whose values are not of the types this store writes (a damaged or
    /// hand-edited database).</summary>
    private static bool IsReadFailure(Exception ex) => ex is SqliteException or InvalidCastException or FormatException or OverflowException;

    private static StoredMessage ToMessage(SqliteDataReader row, bool withEnvelope)
    {
        var transient = (row.GetInt64(4) & TransientFlag) != 0;
        if (withEnvelope)
        {
            return new StoredMessage(row.GetInt64(0), row.GetString(1), row.GetInt32(2), row.GetInt64(3), (byte[])row.GetValue(5)) { Transient = transient };
        }

        return new StoredMessage(row.GetInt64(0), row.GetString(1), row.GetInt32(2), row.GetInt64(3), ReadOnlyMemory<byte>.Empty) { Transient = transient, Length = row.GetInt32(5) };
    }

    private static SqliteCommand CreateCommand(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var p in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = p });
        }

        return command;
    }

    private SqliteCommand Prepare(ref SqliteCommand? command, string sql, SqliteTransaction transaction, params string[] parameters)
    {
        command ??= CreateCommand(_connection!, sql, parameters);
        command.Transaction = transaction;
        return command;
    }

    /// <summary>Runs one statement on the deduplication table for each remembered id.</summary>
    private void WriteIds(ref SqliteCommand? command, string sql, IReadOnlyList<RememberedId> ids, SqliteTransaction transaction)
    {
        if (ids.Count == 0)
        {
            return;
        }

        var statement = Prepare(ref command, sql, transaction, "$queue", "$id", "$seen");
        foreach (var r in ids)
        {
            statement.Parameters[0].Value = r.Queue;
            statement.Parameters[1].Value = r.MessageId;
            statement.Parameters[2].Value = r.SeenTicks;
            statement.ExecuteNonQuery();
        }
    }

    private void EnsureSchema()
    {
        Execute("CREATE TABLE IF NOT EXISTS mq_schema (version INTEGER NOT NULL);");
        using var read = _connection!.CreateCommand();
        read.CommandText = "SELECT MAX(version) FROM mq_schema;";
        var version = read.ExecuteScalar() is long found ? found : 0;
        if (version > SchemaVersion)
        {
            throw new MessageStoreException(
                $"The schema of the {_name} is version {version}, newer than this code understands ({SchemaVersion}); it was written by a newer MessageQueue. Upgrade the package; the database was not changed.");
        }

        if (version == SchemaVersion)
        {
            return;
        }

        // Create, or upgrade step by step, in one transaction: a failure leaves the old schema as it was.
        using var transaction = _connection.BeginTransaction();
        if (version < 1)
        {
            Execute("CREATE TABLE mq_messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, delivery_count INTEGER NOT NULL, due INTEGER NOT NULL, envelope BLOB NOT NULL);", transaction);
        }

        if (version < 2)
        {
            // Version 2: transient rows (lazy queues), per-queue reads, remembered deduplication ids.
            Execute("ALTER TABLE mq_messages ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;", transaction);
            Execute("CREATE INDEX mq_messages_queue ON mq_messages (queue, id);", transaction);
            Execute("CREATE TABLE mq_dedup (queue TEXT NOT NULL, message_id TEXT NOT NULL, seen INTEGER NOT NULL, PRIMARY KEY (queue, message_id)) WITHOUT ROWID;", transaction);
        }

        Execute($"INSERT INTO mq_schema (version) VALUES ({SchemaVersion});", transaction);
        transaction.Commit();
    }

    private StoreContents ReadContents()
    {
        var queues = new Dictionary<string, int>(StringComparer.Ordinal);
        using (var read = _connection!.CreateCommand())
        {
            read.CommandText = "SELECT queue, COUNT(*) FROM mq_messages GROUP BY queue;";
            using var rows = read.ExecuteReader();
            while (rows.Read())
            {
                queues[rows.GetString(0)] = rows.GetInt32(1);
            }
        }

        long maxId;
        using (var read = _connection.CreateCommand())
        {
            read.CommandText = "SELECT COALESCE(MAX(id), 0) FROM mq_messages;";
            maxId = (long)read.ExecuteScalar()!;
        }

        var remembered = new List<RememberedId>();
        using (var read = _connection.CreateCommand())
        {
            read.CommandText = "SELECT queue, message_id, seen FROM mq_dedup ORDER BY seen;";
            using var rows = read.ExecuteReader();
            while (rows.Read())
            {
                remembered.Add(new RememberedId(rows.GetString(0), rows.GetString(1), rows.GetInt64(2)));
            }
        }

        return new StoreContents(queues, maxId, remembered);
    }

    private void Execute(string sql, SqliteTransaction? transaction = null, SqliteConnection? connection = null)
    {
        using var command = (connection ?? _connection!).CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }
}
