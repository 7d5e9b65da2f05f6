namespace MessageQueue;

/// <summary>Options of the SQLite message store (and, inherited, of how the broker uses it).</summary>
public sealed class SqliteStoreOptions : StorageOptions
{
    /// <summary>Gets or sets how carefully commits reach the disk.</summary>
    /// <value>The default value is <see cref="SqliteSynchronous.Full"/>.</value>
    public SqliteSynchronous Synchronous { get; set; } = SqliteSynchronous.Full;

    /// <summary>Gets or sets how long a write waits for a database another process has locked before it fails
    /// (rounded up to whole seconds).</summary>
    /// <value>The default value is 5 seconds.</value>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets how long <see cref="MessageBrokerBuilder.Build"/> waits for another broker (in this or
    /// another process) to release the database file before it fails with a <see cref="MessageStoreException"/>
    /// naming the file and the owner's process id. One broker owns a file at a time, from <c>Build()</c> until it is
    /// disposed or its process ends (a killed process releases it at once). A rolling deploy whose new instance starts
    /// while the old one drains sets this to the old one's shutdown time.
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits as long as it takes.</summary>
    /// <value>The default value is 15 seconds.</value>
    public TimeSpan OwnerWaitTimeout { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>SQLite's <c>synchronous</c> setting for commits that confirm publishes.</summary>
public enum SqliteSynchronous
{
    /// <summary>Every commit that confirms a publish is synced to disk before the publish completes: a confirmed
    /// message survives a power cut. Commits of only acks and delivery counts are not synced (a lost ack only
    /// causes a redelivery).</summary>
    Full = 0,

    /// <summary>Commits are not synced (WAL mode): a confirmed message survives a crash of the process, but the
    /// last commits may be lost if the machine loses power. Faster.</summary>
    Normal = 1,
}
