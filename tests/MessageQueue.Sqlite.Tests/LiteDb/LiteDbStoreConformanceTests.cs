using LiteDB;
using MessageQueue.LiteDb;
using MessageQueue.Testing.Stores;

namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>The LiteDB store against the store conformance suite every <see cref="IMessageStore"/> must pass,
/// unchanged (the same checks the SQLite store passes).</summary>
[TestFixture]
public sealed class LiteDbStoreConformanceTests : MessageStoreConformance
{
    private static readonly LiteDbStoreOptions Options = new() { OwnerWaitTimeout = TimeSpan.FromMilliseconds(200) };

    [TestCaseSource(typeof(MessageStoreConformance), nameof(Checks))]
    public Task Conforms(string check) => RunAsync(check);

    protected override IMessageStore CreateStore(string location) => new LiteDbMessageStore(location, Options);

    protected override IMessageStore CreateFullStore(string location) =>
        new LiteDbMessageStore(location, Options) { FreeBytesForTests = 512 * 1024 };

    protected override IMessageStore CreateReadOnlyStore(string location) =>
        new LiteDbMessageStore($"Filename={location};ReadOnly=true", Options);

    protected override void MakeSchemaNewer(string location)
    {
        using var db = new LiteDatabase($"Filename={location}");
        db.UserVersion = LiteDbMessageStore.SchemaVersion + 1;
    }

    protected override void Corrupt(string location)
    {
        using var file = new FileStream(location, FileMode.Open, FileAccess.Write);
        file.Write(Enumerable.Repeat((byte)0x5A, 4096).ToArray());
    }

    protected override void DeleteLocation(string location)
    {
        base.DeleteLocation(location);
        File.Delete(LiteDbMessageStore.LogFileOf(location));
    }
}
