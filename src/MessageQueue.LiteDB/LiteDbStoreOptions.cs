namespace MessageQueue;

/// <summary>Options of the LiteDB message store (and, inherited, of how the broker uses it).</summary>
public sealed class LiteDbStoreOptions : StorageOptions
{
    /// <summary>Gets or sets what a confirmed publish means on disk.</summary>
    /// <value>The default value is <see cref="LiteDbSynchronous.Full"/>.</value>
    public LiteDbSynchronous Synchronous { get; set; } = LiteDbSynchronous.Full;

    /// <summary>Gets or sets how long <see cref="MessageBrokerBuilder.Build"/> waits for another broker (in this or
    /// another process) to release the file before it fails with a <see cref="MessageStoreException"/> naming the
    /// file and the owner's process id. One broker owns a file at a time, from <c>Build()</c> until it is disposed or
    /// its process ends (a killed process releases it at once). <see cref="Timeout.InfiniteTimeSpan"/> waits as long
    /// as it takes.</summary>
    /// <value>The default value is 15 seconds.</value>
    public TimeSpan OwnerWaitTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets after how many pages (8 KB each) in LiteDB's log file the store copies the log into the
    /// data file (a checkpoint), right after the commit that reached it (not inside it, as LiteDB's own
    /// <c>CHECKPOINT</c> pragma would: a failed checkpoint then never fails a commit). Smaller keeps the log small;
    /// larger makes fewer, longer checkpoints.</summary>
    /// <value>The default value is 1,000 pages (LiteDB's default).</value>
    public int CheckpointPages { get; set; } = 1000;
}

/// <summary>What a confirmed publish means on disk with the LiteDB store.</summary>
/// <remarks>
/// A LiteDB 5 commit writes the transaction's pages to the log file (<c>name-log.db</c>) with ordinary writes and
/// returns: it never syncs the log (it syncs the data file only at a checkpoint, before it truncates the log). So
/// after a commit the pages are in the operating system's cache: they survive the process being killed, not the
/// machine losing power. <see cref="Full"/> adds the missing sync.
/// </remarks>
public enum LiteDbSynchronous
{
    /// <summary>Every commit that confirms a publish is followed by a sync of the log file (fsync) before the publish
    /// completes: a confirmed message survives a power cut. Commits of only acks and delivery counts are not
    /// synced (a lost ack only causes a redelivery).</summary>
    Full = 0,

    /// <summary>Commits are not synced (LiteDB's own behaviour): a confirmed message survives a crash of the
    /// process, but the last commits may be lost if the machine loses power. Faster.</summary>
    Normal = 1,
}
