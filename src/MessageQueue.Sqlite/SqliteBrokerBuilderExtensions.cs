using MessageQueue.Configuration;
using MessageQueue.Sqlite;
using Microsoft.Extensions.Configuration;

namespace MessageQueue;

/// <summary>Adds the SQLite message store to a broker.</summary>
public static class SqliteBrokerBuilderExtensions
{
    /// <summary>Keeps the broker's durable and lazy queues in a SQLite database (one file per broker, WAL mode). The
    /// database is created on first use; <see cref="MessageBrokerBuilder.Build"/> recovers what it holds.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="pathOrConnectionString">A file path (e.g. <c>app-queue.db</c>) or a connection string.</param>
    /// <param name="configure">Sets the store's options.</param>
    /// <returns>The builder.</returns>
    public static MessageBrokerBuilder UseSqlite(this MessageBrokerBuilder builder, string pathOrConnectionString, Action<SqliteStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(pathOrConnectionString);
        var options = new SqliteStoreOptions();
        configure?.Invoke(options);
        _ = new SqliteMessageStore(pathOrConnectionString, options); // checks the options now, not at Build (opens nothing)
        return builder.UseStore(() => new SqliteMessageStore(pathOrConnectionString, options), options);
    }

    /// <summary>Keeps the broker's durable and lazy queues in the SQLite database a configuration section names
    /// (for example <c>MessageQueue:Sqlite</c> in <c>appsettings.json</c>):
    /// <c>{ "Database": "app-queue.db", "Synchronous": "Normal", "BusyTimeout": "00:00:05", "OwnerWaitTimeout": "00:00:15",
    /// "LazyWindow": 256, "MaxBatchSize": 10000, "AckDelay": "00:00:00.005" }</c>; only <c>Database</c> is required.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="section">The section.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="TopologyException">A value is missing or does not parse, or a key is not a store option;
    /// <see cref="TopologyException.Problems"/> names each by its configuration path.</exception>
    public static MessageBrokerBuilder UseSqlite(this MessageBrokerBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var values = new ConfigurationValues([]);
        var (database, storage) = values.StoreSection(section, "SQLite", nameof(SqliteStoreOptions.Synchronous), nameof(SqliteStoreOptions.BusyTimeout), nameof(SqliteStoreOptions.OwnerWaitTimeout));
        var synchronous = values.Enum<SqliteSynchronous>(section, nameof(SqliteStoreOptions.Synchronous));
        var busy = values.Duration(section, nameof(SqliteStoreOptions.BusyTimeout));
        var ownerWait = values.Duration(section, nameof(SqliteStoreOptions.OwnerWaitTimeout));
        return values.UseStore(section, () => builder.UseSqlite(database!, o =>
        {
            storage(o);
            o.Synchronous = synchronous ?? o.Synchronous;
            o.BusyTimeout = busy ?? o.BusyTimeout;
            o.OwnerWaitTimeout = ownerWait ?? o.OwnerWaitTimeout;
        }));
    }
}
