namespace MessageQueue.Sqlite.Tests.LiteDb;

/// <summary>Durable queues on the LiteDB store against the queue contract (the same tests as on SQLite).</summary>
public sealed class LiteDbDurableQueueContract : QueueContract
{
    protected override bool Durable => true;

    protected override bool Lazy => false;

    protected override MessageBrokerBuilder Configure(MessageBrokerBuilder builder) => builder.UseLiteDb(Database);

    protected override void Mode(QueueOptions options) => options.Durable = true;
}

/// <summary>Durable lazy queues on the LiteDB store (a window of 4 in memory, so most messages are on disk) against
/// the queue contract.</summary>
public sealed class LiteDbLazyQueueContract : QueueContract
{
    protected override bool Durable => true;

    protected override bool Lazy => true;

    protected override MessageBrokerBuilder Configure(MessageBrokerBuilder builder) => builder.UseLiteDb(Database, o => o.LazyWindow = 4);

    protected override void Mode(QueueOptions options)
    {
        options.Durable = true;
        options.Mode = QueueMode.Lazy;
    }
}
