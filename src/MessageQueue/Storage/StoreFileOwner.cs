using System.Diagnostics;
using System.Globalization;

namespace MessageQueue.Storage;

/// <summary>
/// Makes one broker the owner of a database file: an exclusive lock on <c>&lt;database&gt;.lock</c> (an OS file lock:
/// <c>flock</c> on Linux and macOS, a sharing lock on Windows), held from before the store reads anything until it is
/// closed. The operating system releases it when the process ends, however it ends (a kill -9 included), so a crashed
/// owner never blocks its successor. Who holds it is written to <c>&lt;database&gt;.owner</c> (process id, machine,
/// since when) for the error a second broker gets; that file is only read while the lock is held by someone else.
/// Shared by the file stores (SQLite, LiteDB).
/// </summary>
internal sealed class StoreFileOwner : IDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private FileStream? _lock;

    private StoreFileOwner(FileStream lockFile) => _lock = lockFile;

    /// <summary>Raised with the lock file's path each time a broker finds it held and waits (for tests: a signal that
    /// the second broker is waiting, instead of a sleep).</summary>
    internal static event Action<string>? Waiting;

    /// <summary>Takes ownership of <paramref name="databasePath"/>, waiting up to <paramref name="wait"/> for another
    /// owner to release it.</summary>
    /// <exception cref="MessageStoreException">Another broker kept it for longer, or the lock file cannot be made.</exception>
    internal static StoreFileOwner Acquire(string databasePath, TimeSpan wait, string storeName, string waitOption)
    {
        var lockPath = databasePath + ".lock";
        var ownerPath = databasePath + ".owner";
        var clock = Stopwatch.StartNew();
        while (true)
        {
            FileStream stream;
            try
            {
                stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1, FileOptions.None);
            }
            catch (IOException ex) when (IsHeldElsewhere(ex))
            {
                var left = wait - clock.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    throw new MessageStoreException(
                        $"The {storeName} is in use by another broker ({DescribeOwner(ownerPath)}); waited {Describe(wait)} for it to be released. " +
                        $"Only one broker may use a store file at a time: stop the other one, give this one its own file, or wait longer ({waitOption}).",
                        ex);
                }

                Waiting?.Invoke(lockPath);
                Thread.Sleep(left < Poll ? left : Poll);
                continue;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new MessageStoreException($"The {storeName} could not be opened: its lock file '{lockPath}' cannot be created or opened ({ex.Message}).", ex);
            }

            try
            {
                File.WriteAllText(ownerPath, string.Create(CultureInfo.InvariantCulture,
                    $"process {Environment.ProcessId} on '{Environment.MachineName}' since {DateTimeOffset.UtcNow:O}{Environment.NewLine}"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Only the message a second broker would show loses its detail; ownership itself is the lock.
                _ = ex;
            }

            return new StoreFileOwner(stream);
        }
    }

    /// <summary>Whether opening the lock file failed because another handle holds its lock, as opposed to a missing
    /// directory, a read-only file system or too many open files: Windows reports a sharing or lock violation (32,
    /// 33); Linux and macOS report the failed non-blocking <c>flock</c> as EWOULDBLOCK (11 on Linux, 35 on macOS).</summary>
    private static bool IsHeldElsewhere(IOException ex) =>
        ex is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException)
        && (OperatingSystem.IsWindows() ? (ex.HResult & 0xFFFF) is 32 or 33 : ex.HResult is 11 or 35);

    private static string DescribeOwner(string ownerPath)
    {
        try
        {
            var text = File.ReadAllText(ownerPath).Trim();
            return text.Length > 0 ? $"owned by {text}" : "its owner has not recorded itself yet";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "its owner is unknown";
        }
    }

    private static string Describe(TimeSpan wait) =>
        wait == TimeSpan.Zero ? "not at all" : wait.ToString("c", CultureInfo.InvariantCulture);

    /// <summary>Follows symbolic links in every part of <paramref name="fullPath"/> (as realpath does), so that every
    /// name of one file takes the same lock.</summary>
    internal static string Canonical(string fullPath)
    {
        var root = Path.GetPathRoot(fullPath) ?? "";
        var current = root;
        foreach (var part in fullPath[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            current = info.LinkTarget is null ? next : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? next;
        }

        return current;
    }

    /// <summary>Releases ownership (the owner file is left: it is only read while someone holds the lock).</summary>
    public void Dispose()
    {
        _lock?.Dispose();
        _lock = null;
    }
}
