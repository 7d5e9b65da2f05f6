namespace MessageQueue.LiteDb;

/// <summary>
/// One of the store's two files (data, log) as LiteDB sees it. Unbuffered, so every page LiteDB writes reaches the
/// operating system in the call that writes it (a killed process loses nothing LiteDB wrote); <see cref="Flush"/>
/// (LiteDB calls it on the data file at a checkpoint, before it truncates the log) and <see cref="Sync"/> (the store
/// calls it on the log after a commit that confirms publishes) reach the disk (fsync).
/// </summary>
internal sealed class StoreFile(FileStream file) : Stream
{
    private long _syncs;

    public override bool CanRead => file.CanRead;

    public override bool CanSeek => file.CanSeek;

    public override bool CanWrite => file.CanWrite;

    public override long Length => file.Length;

    public override long Position
    {
        get => file.Position;
        set => file.Position = value;
    }

    /// <summary>Opens a file unbuffered and exclusively: no other process (another LiteDB, a copy tool writing) may
    /// open it while the broker has it, and the broker does not open it while another process has it.</summary>
    public static StoreFile Open(string path) =>
        new(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0, FileOptions.RandomAccess));

    /// <summary>Gets how many times the file was synced (for tests of what each option syncs).</summary>
    internal long Syncs => Interlocked.Read(ref _syncs);

    /// <summary>Puts what was written on stable storage.</summary>
    public void Sync()
    {
        file.Flush(flushToDisk: true);
        Interlocked.Increment(ref _syncs);
    }

    public override void Flush() => Sync();

    public override int Read(byte[] buffer, int offset, int count) => file.Read(buffer, offset, count);

    public override long Seek(long offset, SeekOrigin origin) => file.Seek(offset, origin);

    /// <summary>Sets the length; emptying the file (LiteDB empties its log after a checkpoint) is synced at once, so
    /// after a power cut the log holds no pages of transactions already copied into the data file.</summary>
    public override void SetLength(long value)
    {
        file.SetLength(value);
        if (value == 0)
        {
            Sync();
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => file.Write(buffer, offset, count);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            file.Dispose();
        }

        base.Dispose(disposing);
    }
}
