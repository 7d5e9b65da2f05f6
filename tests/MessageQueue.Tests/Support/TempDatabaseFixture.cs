namespace MessageQueue.Tests.Support;

/// <summary>A fixture whose every test gets a fresh database path; the file and its WAL files (SQLite) or its log
/// (LiteDB) are deleted after.</summary>
public abstract class TempDatabaseFixture
{
    protected string Database { get; private set; } = "";

    /// <summary>Gets LiteDB's log file of <see cref="Database"/> (<c>name-log.db</c>).</summary>
    protected string LiteDbLog => MessageQueue.LiteDb.LiteDbMessageStore.LogFileOf(Database);

    [SetUp]
    public void NewDatabasePath() => Database = Path.Combine(Path.GetTempPath(), $"mq-{Guid.NewGuid():N}.db");

    [TearDown]
    public void DeleteDatabase()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools(); // pooled connections keep the file open
        foreach (var file in new[] { Database, Database + "-wal", Database + "-shm", Database + ".lock", Database + ".owner", LiteDbLog })
        {
            File.Delete(file);
        }
    }
}
