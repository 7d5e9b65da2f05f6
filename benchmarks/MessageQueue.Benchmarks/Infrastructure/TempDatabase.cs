using Microsoft.Data.Sqlite;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>Fresh database paths for benchmark iterations, and their deletion (with SQLite's WAL files, LiteDB's log
/// and the owner lock).</summary>
public static class TempDatabase
{
    public static string NewPath() => Path.Combine(Path.GetTempPath(), $"mq-bench-{Guid.NewGuid():N}.db");

    public static void Delete(string path)
    {
        SqliteConnection.ClearAllPools(); // pooled connections keep the file open
        foreach (var file in new[] { path, path + "-wal", path + "-shm", path + ".lock", path + ".owner", MessageQueue.LiteDb.LiteDbMessageStore.LogFileOf(path) })
        {
            File.Delete(file);
        }
    }
}
