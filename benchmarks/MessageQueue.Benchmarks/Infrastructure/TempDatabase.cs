using Microsoft.Data.Sqlite;

namespace MessageQueue.Benchmarks.Infrastructure;

/// <summary>Fresh SQLite database paths for benchmark iterations, and their deletion (with the WAL files).</summary>
public static class TempDatabase
{
    public static string NewPath() => Path.Combine(Path.GetTempPath(), $"mq-bench-{Guid.NewGuid():N}.db");

    public static void Delete(string path)
    {
        SqliteConnection.ClearAllPools(); // pooled connections keep the file open
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            File.Delete(file);
        }
    }
}
