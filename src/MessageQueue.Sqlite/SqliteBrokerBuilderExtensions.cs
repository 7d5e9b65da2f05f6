using MessageQueue.Sqlite;

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
}
