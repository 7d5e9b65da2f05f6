using MessageQueue.Storage;

namespace MessageQueue.Sqlite;

/// <summary>
/// The file a SQLite data source opens, as one canonical path, so that every name of one database (a relative path,
/// a <c>file:</c> URI, <c>|DataDirectory|</c>, a symbolic link to it or to a folder on its way) takes the same
/// owner lock. Hard links are other names the file system cannot tell apart by path: they are not detected.
/// </summary>
internal static class DatabaseFile
{
    private const string DataDirectory = "|DataDirectory|";

    /// <summary>The canonical path of the database file, or null when the data source is not a file (in memory, a
    /// temporary database).</summary>
    internal static string? Resolve(string dataSource)
    {
        var path = dataSource;
        if (path.Length == 0 || path == ":memory:")
        {
            return null;
        }

        if (path.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            // A SQLite URI filename: file:path, file:/abs/path or file:///abs/path, with an optional ?query.
            var query = path.IndexOf('?', StringComparison.Ordinal);
            var parameters = query < 0 ? "" : path[(query + 1)..];
            if (parameters.Contains("mode=memory", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }

            path = Uri.UnescapeDataString(query < 0 ? path[5..] : path[5..query]);
            if (path.StartsWith("//", StringComparison.Ordinal))
            {
                path = path[2..];
                var slash = path.IndexOf('/', StringComparison.Ordinal);
                path = slash < 0 ? "" : path[slash..]; // the authority (empty or localhost) is not part of the path
            }

            if (path.Length == 0 || path == ":memory:")
            {
                return null;
            }
        }
        else if (path.StartsWith(DataDirectory, StringComparison.OrdinalIgnoreCase))
        {
            // As Microsoft.Data.Sqlite expands it.
            var folder = AppDomain.CurrentDomain.GetData("DataDirectory") as string;
            path = Path.Combine(string.IsNullOrEmpty(folder) ? AppContext.BaseDirectory : folder, path[DataDirectory.Length..]);
        }

        try
        {
            return StoreFileOwner.Canonical(Path.GetFullPath(path));
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException or IOException or UnauthorizedAccessException)
        {
            return Path.IsPathFullyQualified(path) ? path : null;
        }
    }
}
