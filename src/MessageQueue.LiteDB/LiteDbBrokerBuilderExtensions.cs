using MessageQueue.Configuration;
using MessageQueue.LiteDb;
using Microsoft.Extensions.Configuration;

namespace MessageQueue;

/// <summary>Adds the LiteDB message store to a broker.</summary>
public static class LiteDbBrokerBuilderExtensions
{
    /// <summary>Keeps the broker's durable and lazy queues in a LiteDB 5 file (and its log, <c>name-log.db</c>). The
    /// file is created on first use; <see cref="MessageBrokerBuilder.Build"/> recovers what it holds.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="pathOrConnectionString">A file path (e.g. <c>app-queue.db</c>) or a LiteDB connection string
    /// (<c>Filename=app-queue.db;Password=...</c>).</param>
    /// <param name="configure">Sets the store's options.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The path is empty, the connection string asks for <c>Connection=shared</c>
    /// or a file in memory, or an option is out of range.</exception>
    public static MessageBrokerBuilder UseLiteDb(this MessageBrokerBuilder builder, string pathOrConnectionString, Action<LiteDbStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(pathOrConnectionString);
        var options = new LiteDbStoreOptions();
        configure?.Invoke(options);
        _ = new LiteDbMessageStore(pathOrConnectionString, options); // checks the options now, not at Build (opens nothing)
        return builder.UseStore(() => new LiteDbMessageStore(pathOrConnectionString, options), options);
    }

    /// <summary>Keeps the broker's durable and lazy queues in the LiteDB file a configuration section names (for
    /// example <c>MessageQueue:LiteDB</c> in <c>appsettings.json</c>):
    /// <c>{ "Database": "app-queue.db", "Synchronous": "Normal", "OwnerWaitTimeout": "00:00:15", "CheckpointPages": 1000,
    /// "LazyWindow": 256, "MaxBatchSize": 10000, "AckDelay": "00:00:00.005" }</c>; only <c>Database</c> is required.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="section">The section.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="TopologyException">A value is missing or does not parse, or a key is not a store option;
    /// <see cref="TopologyException.Problems"/> names each by its configuration path.</exception>
    public static MessageBrokerBuilder UseLiteDb(this MessageBrokerBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var values = new ConfigurationValues([]);
        var (database, storage) = values.StoreSection(section, "LiteDB", nameof(LiteDbStoreOptions.Synchronous), nameof(LiteDbStoreOptions.OwnerWaitTimeout), nameof(LiteDbStoreOptions.CheckpointPages));
        var synchronous = values.Enum<LiteDbSynchronous>(section, nameof(LiteDbStoreOptions.Synchronous));
        var ownerWait = values.Duration(section, nameof(LiteDbStoreOptions.OwnerWaitTimeout));
        var checkpoint = values.Int(section, nameof(LiteDbStoreOptions.CheckpointPages));
        return values.UseStore(section, () => builder.UseLiteDb(database!, o =>
        {
            storage(o);
            o.Synchronous = synchronous ?? o.Synchronous;
            o.OwnerWaitTimeout = ownerWait ?? o.OwnerWaitTimeout;
            o.CheckpointPages = checkpoint ?? o.CheckpointPages;
        }));
    }
}
