using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// Review of "One broker per store file" (f179a92): the lock is taken on <c>&lt;the path as written&gt;.lock</c>, so
/// two brokers that name the same database file differently (a symlink, a <c>file:</c> URI, <c>|DataDirectory|</c>)
/// take two different locks, or none, and both open the file: exactly what the lock exists to prevent (the second
/// one's start-up deletes the first one's transient rows, and both hand out the same row ids).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class StoreOwnershipReviewTests : TempDatabaseFixture
{
    private readonly List<string> _extraFiles = [];

    [TearDown]
    public void DeleteExtraFiles()
    {
        foreach (var file in _extraFiles)
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task SecondBroker_ThroughASymlinkToTheSameFile_IsRefused()
    {
        var link = Database + "-link.db";
        _extraFiles.AddRange([link, link + ".lock", link + ".owner"]);
        await using var first = Declare(new MessageBrokerBuilder().UseSqlite(Database)).Build();
        await first.SendAsync("q", new Order(1));
        File.CreateSymbolicLink(link, Database);

        IMessageBroker? second = null;
        try
        {
            Assert.Throws<MessageStoreException>(
                () => second = Declare(new MessageBrokerBuilder().UseSqlite(link, o => o.OwnerWaitTimeout = TimeSpan.Zero)).Build(),
                "a second broker opened the first one's database through a symlink (the lock file is <link>.lock, not <database>.lock)");
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task SecondBroker_ThroughAFileUri_IsRefused()
    {
        // Microsoft.Data.Sqlite opens "file:" data sources as SQLite URI filenames: the same file on disk.
        await using var first = Declare(new MessageBrokerBuilder().UseSqlite(Database)).Build();
        await first.SendAsync("q", new Order(1));

        IMessageBroker? second = null;
        try
        {
            Assert.Throws<MessageStoreException>(
                () => second = Declare(new MessageBrokerBuilder().UseSqlite($"Data Source=file:{Database}", o => o.OwnerWaitTimeout = TimeSpan.Zero)).Build(),
                "a second broker opened the first one's database through a file: URI (no lock is taken for URIs)");
            Assert.That(second, Is.Null);
        }
        finally
        {
            if (second is not null)
            {
                Assert.That(second.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "it is the same file: the second broker sees the first one's message");
                await second.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task SecondBroker_ThroughDataDirectory_IsRefused()
    {
        // Microsoft.Data.Sqlite expands |DataDirectory| (AppContext.BaseDirectory unless set); the lock is taken on
        // Path.GetFullPath("|DataDirectory|...") instead: a file named "|DataDirectory|....lock" in the working directory.
        var name = Path.GetFileName(Database);
        var inBase = Path.Combine(AppContext.BaseDirectory, name);
        _extraFiles.AddRange([inBase, inBase + "-wal", inBase + "-shm", inBase + ".lock", inBase + ".owner",
            Path.GetFullPath($"|DataDirectory|{name}.lock"), Path.GetFullPath($"|DataDirectory|{name}.owner")]);
        await using var first = Declare(new MessageBrokerBuilder().UseSqlite(inBase)).Build();
        await first.SendAsync("q", new Order(1));

        IMessageBroker? second = null;
        try
        {
            Assert.Throws<MessageStoreException>(
                () => second = Declare(new MessageBrokerBuilder().UseSqlite($"Data Source=|DataDirectory|{name}", o => o.OwnerWaitTimeout = TimeSpan.Zero)).Build(),
                "a second broker opened the first one's database through |DataDirectory|");
        }
        finally
        {
            if (second is not null)
            {
                Assert.That(second.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "it is the same file: the second broker sees the first one's message");
                await second.DisposeAsync();
            }
        }
    }

    private static MessageBrokerBuilder Declare(MessageBrokerBuilder builder) =>
        builder.AddQueue("q", o => o.Durable = true);
}
