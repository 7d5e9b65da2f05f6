using LiteDB;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>
/// What LiteDB 5.0.21 itself writes and syncs, observed through the streams it is given: the facts the LiteDB
/// store's <see cref="LiteDbSynchronous"/> is built on (README, Persistence). If a LiteDB upgrade changes them,
/// these fail and the documentation must change with them.
/// </summary>
[TestFixture]
public sealed class LiteDbSyncFactsTests : TempDatabaseFixture
{
    [Test]
    public void ACommit_WritesItsPagesToTheLog_BeforeItReturns_ButNeverSyncsIt()
    {
        using var data = new Spy(Database);
        using var log = new Spy(LiteDbLog);
        using var db = new LiteDatabase(data, logStream: log);
        var m = db.GetCollection("m", BsonAutoId.Int64);
        m.Insert(new BsonDocument { ["b"] = new byte[100] });
        var (writes, flushes) = (log.Writes, log.Flushes);

        m.Insert(new BsonDocument { ["b"] = new byte[100] }); // one auto-committed transaction
        using (Assert.EnterMultipleScope())
        {
            Assert.That(log.Writes, Is.GreaterThan(writes), "the commit's pages reached the log file (the operating system) before Insert returned");
            Assert.That(log.Flushes, Is.EqualTo(flushes), "the log was not synced: a power cut may lose the commit");
        }
    }

    [Test]
    public void ACheckpoint_SyncsTheDataFile_BeforeItEmptiesTheLog()
    {
        using var data = new Spy(Database);
        using var log = new Spy(LiteDbLog);
        using var db = new LiteDatabase(data, logStream: log);
        db.GetCollection("m", BsonAutoId.Int64).Insert(new BsonDocument { ["b"] = new byte[100] });
        var flushes = data.Flushes;

        db.Checkpoint();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(data.Flushes, Is.GreaterThan(flushes), "the data file is synced at a checkpoint");
            Assert.That(log.Length, Is.Zero, "then the log is emptied");
            Assert.That(data.FlushedBeforeLogTruncated(log), Is.True);
        }
    }

    /// <summary>A file stream that counts writes and flushes (LiteDB syncs a stream it does not own by Flush()).</summary>
    private sealed class Spy(string path) : FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0)
    {
        private static long _clock;

        public int Writes { get; private set; }

        public int Flushes { get; private set; }

        private long LastFlush { get; set; }

        private long Truncated { get; set; }

        public bool FlushedBeforeLogTruncated(Spy log) => LastFlush > 0 && log.Truncated > LastFlush;

        public override void Write(byte[] buffer, int offset, int count)
        {
            Writes++;
            base.Write(buffer, offset, count);
        }

        public override void Flush()
        {
            Flushes++;
            LastFlush = Interlocked.Increment(ref _clock);
            base.Flush(flushToDisk: true);
        }

        public override void Flush(bool flushToDisk)
        {
            Flushes++;
            LastFlush = Interlocked.Increment(ref _clock);
            base.Flush(flushToDisk);
        }

        public override void SetLength(long value)
        {
            if (value == 0)
            {
                Truncated = Interlocked.Increment(ref _clock);
            }

            base.SetLength(value);
        }
    }
}
