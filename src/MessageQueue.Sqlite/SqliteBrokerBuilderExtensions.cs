using System.Globalization;
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
        var path = (section as IConfigurationSection)?.Path ?? "";
        var problems = new List<string>();
        string[] known = ["Database", nameof(SqliteStoreOptions.Synchronous), nameof(SqliteStoreOptions.BusyTimeout), nameof(SqliteStoreOptions.OwnerWaitTimeout),
            nameof(StorageOptions.LazyWindow), nameof(StorageOptions.MaxBatchSize), nameof(StorageOptions.AckDelay)];
        foreach (var child in section.GetChildren().Where(c => !known.Contains(c.Key, StringComparer.OrdinalIgnoreCase)))
        {
            problems.Add($"{child.Path}: '{child.Key}' is not a SQLite store option; known: {string.Join(", ", known)}.");
        }

        var database = section["Database"];
        if (string.IsNullOrWhiteSpace(database))
        {
            problems.Add($"{path}:Database is missing: the SQLite file path or connection string.");
        }

        var options = new SqliteStoreOptions();
        Read(section, nameof(SqliteStoreOptions.Synchronous), problems, "Full or Normal", (string v, out SqliteSynchronous r) => Enum.TryParse(v, true, out r) && Enum.IsDefined(r) && !int.TryParse(v, out _), v => options.Synchronous = v);
        Read<TimeSpan>(section, nameof(SqliteStoreOptions.BusyTimeout), problems, "a duration ([d.]hh:mm:ss[.fff])", Duration, v => options.BusyTimeout = v);
        Read<TimeSpan>(section, nameof(SqliteStoreOptions.OwnerWaitTimeout), problems, "a duration ([d.]hh:mm:ss[.fff])", Duration, v => options.OwnerWaitTimeout = v);
        Read<int>(section, nameof(StorageOptions.LazyWindow), problems, "a whole number", Whole, v => options.LazyWindow = v);
        Read<int>(section, nameof(StorageOptions.MaxBatchSize), problems, "a whole number", Whole, v => options.MaxBatchSize = v);
        Read<TimeSpan>(section, nameof(StorageOptions.AckDelay), problems, "a duration ([d.]hh:mm:ss[.fff])", Duration, v => options.AckDelay = v);
        if (problems.Count > 0)
        {
            throw new TopologyException(problems);
        }

        try
        {
            return builder.UseSqlite(database!, o =>
            {
                o.Synchronous = options.Synchronous;
                o.BusyTimeout = options.BusyTimeout;
                o.OwnerWaitTimeout = options.OwnerWaitTimeout;
                o.LazyWindow = options.LazyWindow;
                o.MaxBatchSize = options.MaxBatchSize;
                o.AckDelay = options.AckDelay;
            });
        }
        catch (ArgumentException ex)
        {
            throw new TopologyException($"{path}: {ex.Message}");
        }
    }

    private delegate bool TryParse<T>(string value, out T result);

    private static bool Duration(string value, out TimeSpan result) => TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out result);

    private static bool Whole(string value, out int result) => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out result);

    private static void Read<T>(IConfiguration section, string key, List<string> problems, string expected, TryParse<T> parse, Action<T> set)
    {
        var child = section.GetSection(key);
        if (child.Value is not { } value)
        {
            return;
        }

        if (parse(value.Trim(), out var result))
        {
            set(result);
        }
        else
        {
            problems.Add($"{child.Path}: '{value}' is not {expected}.");
        }
    }
}
