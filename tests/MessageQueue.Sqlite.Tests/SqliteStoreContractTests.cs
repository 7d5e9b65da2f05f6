using MessageQueue.Testing.Stores;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

/// <summary>The SQLite store against the store conformance suite every <see cref="IMessageStore"/> must pass.</summary>
[TestFixture]
public sealed class SqliteStoreContractTests : MessageStoreContract
{
    private static readonly SqliteStoreOptions Options = new() { OwnerWaitTimeout = TimeSpan.FromMilliseconds(200) };

    protected override IMessageStore CreateStore(string location) => new SqliteMessageStore(location, Options);

    protected override IMessageStore CreateFullStore(string location) =>
        new SqliteMessageStore(location, Options) { FreePagesForTests = 8 };

    protected override IMessageStore CreateReadOnlyStore(string location) =>
        new SqliteMessageStore($"Data Source={location};Mode=ReadOnly", Options);

    protected override void MakeSchemaNewer(string location)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = location, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"INSERT INTO mq_schema (version) VALUES ({SqliteMessageStore.SchemaVersion + 1});";
        command.ExecuteNonQuery();
    }

    protected override void Corrupt(string location)
    {
        using var file = new FileStream(location, FileMode.Open, FileAccess.Write);
        file.Write(Enumerable.Repeat((byte)0x5A, 4096).ToArray());
    }
}
