namespace MessageQueue.Tests.Support;

/// <summary>A fixture whose every test gets a fresh database path; the file and its WAL files are deleted after.</summary>
public abstract class TempDatabaseFixture
{
    protected string Database { get; private set; } = "";

    [SetUp]
    public void NewDatabasePath() => Database = Path.Combine(Path.GetTempPath(), $"mq-{Guid.NewGuid():N}.db");

    [TearDown]
    public void DeleteDatabase()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools(); // pooled connections keep the file open
        foreach (var file in new[] { Database, Database + "-wal", Database + "-shm", Database + ".lock", Database + ".owner" })
        {
            File.Delete(file);
        }
    }
}
