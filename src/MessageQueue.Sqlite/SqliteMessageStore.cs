using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite;

/// <summary>
/// The built-in <see cref="IMessageStore"/>: one SQLite database in WAL mode, one table of messages. The schema is
/// created on first use and versioned; a database with a newer schema than this code understands is refused
/// with a clear error instead of being changed.
/// </summary>
public sealed class SqliteMessageStore : IMessageStore
{
    /// <summary>The schema version this code writes and reads.</summary>
    public const int SchemaVersion = 1;

    private readonly string _connectionString;
    private readonly SqliteStoreOptions _options;
    private SqliteConnection? _connection;
    private SqliteCommand? _insert;
    private SqliteCommand? _delete;
    private SqliteCommand? _deliver;
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
        builder.Pooling = false; // the broker holds its one connection; closing it releases the file
        _connectionString = builder.ToString();
        _options = options ?? new SqliteStoreOptions();
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredMessage> Open()
    {
        try
        {
            _connection = new SqliteConnection(_connectionString);
            _connection.Open();
            Execute($"PRAGMA busy_timeout = {(int)_options.BusyTimeout.TotalMilliseconds};");
            Execute("PRAGMA journal_mode = WAL;");
            EnsureSchema();
            return ReadAll();
        }
        catch (SqliteException ex)
        {
            Dispose();
            throw new MessageStoreException($"The SQLite message store '{_connectionString}' could not be opened: {ex.Message}", ex);
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
            var insert = Prepare(ref _insert, "INSERT INTO mq_messages (id, queue, delivery_count, due, envelope) VALUES ($id, $queue, $count, $due, $envelope);", transaction, "$id", "$queue", "$count", "$due", "$envelope");
            foreach (var m in batch.Inserts)
            {
                insert.Parameters[0].Value = m.Id;
                insert.Parameters[1].Value = m.Queue;
                insert.Parameters[2].Value = m.DeliveryCount;
                insert.Parameters[3].Value = m.DueTicks;
                insert.Parameters[4].Value = m.Envelope.ToArray();
                insert.ExecuteNonQuery();
            }

            var deliver = Prepare(ref _deliver, "UPDATE mq_messages SET delivery_count = $count WHERE id = $id AND delivery_count < $count;", transaction, "$id", "$count");
            foreach (var (id, count) in batch.Deliveries)
            {
                deliver.Parameters[0].Value = id;
                deliver.Parameters[1].Value = count;
                deliver.ExecuteNonQuery();
            }

            var delete = Prepare(ref _delete, "DELETE FROM mq_messages WHERE id = $id;", transaction, "$id");
            foreach (var id in batch.Deletes)
            {
                delete.Parameters[0].Value = id;
                delete.ExecuteNonQuery();
            }

            transaction.Commit();
        }
        catch (SqliteException ex)
        {
            throw new MessageStoreException($"Writing to the SQLite message store failed ({ex.Message}); nothing of the batch was written.", ex);
        }
    }

    /// <summary>Closes the database.</summary>
    public void Dispose()
    {
        _insert?.Dispose();
        _delete?.Dispose();
        _deliver?.Dispose();
        _insert = _delete = _deliver = null;
        _connection?.Dispose();
        _connection = null;
    }

    private SqliteCommand Prepare(ref SqliteCommand? command, string sql, SqliteTransaction transaction, params string[] parameters)
    {
        if (command is null)
        {
            command = _connection!.CreateCommand();
            command.CommandText = sql;
            foreach (var p in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = p });
            }
        }

        command.Transaction = transaction;
        return command;
    }

    private void EnsureSchema()
    {
        Execute("CREATE TABLE IF NOT EXISTS mq_schema (version INTEGER NOT NULL);");
        using var read = _connection!.CreateCommand();
        read.CommandText = "SELECT MAX(version) FROM mq_schema;";
        var found = read.ExecuteScalar();
        if (found is long version)
        {
            if (version > SchemaVersion)
            {
                throw new MessageStoreException(
                    $"The message store's schema is version {version}, newer than this code understands ({SchemaVersion}); it was written by a newer MessageQueue. Upgrade the package; the database was not changed.");
            }

            return;
        }

        using var transaction = _connection.BeginTransaction();
        Execute("CREATE TABLE IF NOT EXISTS mq_messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, delivery_count INTEGER NOT NULL, due INTEGER NOT NULL, envelope BLOB NOT NULL);", transaction);
        Execute($"INSERT INTO mq_schema (version) VALUES ({SchemaVersion});", transaction);
        transaction.Commit();
    }

    private List<StoredMessage> ReadAll()
    {
        using var read = _connection!.CreateCommand();
        read.CommandText = "SELECT id, queue, delivery_count, due, envelope FROM mq_messages ORDER BY id;";
        using var reader = read.ExecuteReader();
        var all = new List<StoredMessage>();
        while (reader.Read())
        {
            all.Add(new StoredMessage(reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3), (byte[])reader.GetValue(4)));
        }

        return all;
    }

    private void Execute(string sql, SqliteTransaction? transaction = null)
    {
        using var command = _connection!.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }
}
