namespace MessageQueue.Tests.Management;

/// <summary>
/// Options the backend cannot honour are refused, naming the option and the backend, at <c>Build()</c> and when a queue
/// is declared at run time; nothing is declared by a refused call.
/// </summary>
[TestFixture]
public sealed class BackendRefusalTests
{
    [Test]
    public void Build_RefusesEveryOptionTheInMemoryBackendCannotHonour_InOneException()
    {
        var ex = Assert.Throws<TopologyException>(() => new MessageBrokerBuilder()
            .AddQueue("orders", o => o.Durable = true)
            .AddQueue("backlog", o => o.Mode = QueueMode.Lazy)
            .AddQueue("plain")
            .Build());

        Assert.That(ex!.Problems, Is.EqualTo(new[]
        {
            "Queue 'orders' sets Durable = true, which the in-memory backend (no message store) cannot honour: it keeps messages only in memory; call UseSqlite (package MessageQueue.Sqlite) or UseStore.",
            "Queue 'backlog' sets Mode = Lazy, which the in-memory backend (no message store) cannot honour: a lazy queue keeps its backlog in the store; call UseSqlite (package MessageQueue.Sqlite) or UseStore.",
        }));
    }

    [Test]
    public async Task DeclareQueueAsync_RefusesDurableOnTheInMemoryBackend_AndDeclaresNothing()
    {
        await using var broker = new MessageBrokerBuilder().Build();

        var ex = await Assert.ThrowsAsync<TopologyException>(async () => await broker.Management.DeclareQueueAsync("orders", o => o.Durable = true));

        Assert.That(ex!.Message, Does.Contain("Queue 'orders' sets Durable = true, which the in-memory backend (no message store) cannot honour"));
        Assert.That(await broker.Management.DeleteQueueAsync("orders"), Is.False, "the refused queue was not declared");
    }
}
