using System.Text;
using MessageQueue.Storage;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

[MessageType("tests.invoice-issued")]
public sealed record InvoiceIssued(int Id);

/// <summary>Today's name of a type that was once called something else; it declares the name it was stored under.</summary>
[MessageType("tests.order-placed")]
public sealed record OrderWasPlaced(int Id, string Customer);

/// <summary>The type as it was before it was renamed (no longer used by the code, only to write its stored form).</summary>
public sealed record OrderPlacedBeforeTheRename(int Id, string Customer);

[MessageType("tests.clash")]
public sealed record ClashOne(int Id);

[MessageType("tests.clash")]
public sealed record ClashTwo(int Id);

/// <summary>
/// Stable message type names: what a stored message says it is does not depend on the CLR type's name, namespace or
/// assembly once the type declares a name with <see cref="MessageTypeAttribute"/>; by default it is the full name
/// without the assembly. Before, stored messages were keyed by full name plus assembly, so renaming or moving a type
/// dead-lettered its stored backlog.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class MessageTypeNameTests : StoredTypeNameFixture
{
    [Test]
    public async Task DeclaredName_IsStored_AndIsTheMessageTypeProperty()
    {
        await using (var broker = Declare().Build())
        {
            await broker.SendAsync("q", new InvoiceIssued(7));
            Assert.That((await broker.Management.PeekAsync("q"))[0].Properties.MessageType, Is.EqualTo("tests.invoice-issued"));
        }

        var envelope = ReadEnvelopes().Single();
        Assert.Multiple(() =>
        {
            Assert.That(Contains(envelope, "tests.invoice-issued"), Is.True);
            Assert.That(Contains(envelope, typeof(InvoiceIssued).FullName!), Is.False, "the CLR name is not stored");
        });

        await using var restarted = Declare().Build();
        var recovered = await restarted.Management.PeekAsync("q");
        Assert.That(recovered[0].Body, Is.EqualTo(new InvoiceIssued(7)));
    }

    [Test]
    public async Task RenamedType_DeclaringItsOldName_ReadsTheBacklogStoredUnderIt()
    {
        // Stored by a build in which the type was called OrderPlacedBeforeTheRename and declared "tests.order-placed".
        StoreRows(Envelope.Encode(new OrderPlacedBeforeTheRename(1, "ann"), new MessageProperties(), "", "q", 0, new JsonMessageSerializer(), "tests.order-placed"));

        await using var broker = Declare().Build();
        await using var consumer = broker.Consume<OrderWasPlaced>("q");
        var delivery = await consumer.ReceiveAsync().AsTask().WithSafety();
        Assert.That(delivery.Message, Is.EqualTo(new OrderWasPlaced(1, "ann")));
        Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.Zero);
    }

    [Test]
    public async Task DefaultName_IsTheFullNameWithoutTheAssembly_AndNamesStoredWithTheAssemblyStillResolve()
    {
        await using (var broker = Declare().Build())
        {
            await broker.SendAsync("q", new Order(1));
        }

        var envelope = ReadEnvelopes().Single();
        Assert.Multiple(() =>
        {
            Assert.That(Contains(envelope, typeof(Order).FullName!), Is.True);
            Assert.That(Contains(envelope, typeof(Order).Assembly.GetName().Name + ","), Is.False);
            Assert.That(Contains(envelope, ", " + typeof(Order).Assembly.GetName().Name), Is.False, "no assembly: moving the type to another assembly keeps the name");
        });

        // As earlier versions stored it: "full name, assembly".
        StoreRows(Envelope.Encode(new Order(2), new MessageProperties(), "", "q", 0, new JsonMessageSerializer(), $"{typeof(Order).FullName}, {typeof(Order).Assembly.GetName().Name}"));
        await using var restarted = Declare().Build();
        Assert.That((await restarted.Management.PeekAsync("q")).Select(m => m.Body), Is.EqualTo(new object[] { new Order(1), new Order(2) }));
    }

    [Test]
    public async Task UnknownName_IsDeadLetteredWithAReasonNamingIt()
    {
        StoreRows(Envelope.Encode(new Order(3), new MessageProperties(), "", "q", 0, new JsonMessageSerializer(), "tests.no-such-type"));

        await using var broker = Declare().Build();
        var dead = await broker.Management.PeekAsync("dead");
        Assert.That(dead, Has.Count.EqualTo(1));
        var reason = (string)dead[0].Properties.Headers["x-rejection-reason"]!;
        Assert.Multiple(() =>
        {
            Assert.That(reason, Does.Contain("'tests.no-such-type'"));
            Assert.That(reason, Does.Contain("[MessageType"));
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.Zero);
        });
    }

    [Test]
    public async Task TwoTypesDeclaringOneName_NeitherCanBeStored_NothingEnqueued()
    {
        await using var broker = Declare().Build();
        foreach (var message in new object[] { new ClashOne(1), new ClashTwo(2) })
        {
            var ex = await Assert.ThrowsAsync<MessageSerializationException>(async () => await broker.SendAsync("q", message));
            Assert.That(ex!.Message, Does.Contain("'tests.clash'").And.Contain(nameof(ClashOne)).And.Contain(nameof(ClashTwo)));
        }

        Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.Zero);
    }

    [TestCase("")]
    [TestCase(" padded")]
    [TestCase("with,comma")]
    [TestCase("control\u0001")]
    public void Attribute_InvalidName_IsRefusedNamingTheProblem(string name)
    {
        var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => _ = new MessageTypeAttribute(name));
        Assert.That(ex!.Message, Does.Contain("name"));
    }

    [Test]
    public void Attribute_LongerThan255_IsRefused() =>
        Assert.Throws<ArgumentException>(() => _ = new MessageTypeAttribute(new string('a', 256)));

    private List<byte[]> ReadEnvelopes()
    {
        using var store = new SqliteMessageStore(Database);
        store.Open();
        return [.. store.ReadQueue("q", withEnvelopes: true).Select(r => r.Envelope.ToArray())];
    }

    private static bool Contains(byte[] envelope, string text) =>
        envelope.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}

/// <summary>A database with a durable queue "q" (dead letters to "dead"), and rows written to it as another process
/// (an earlier version, a renamed type) would have written them.</summary>
public abstract class StoredTypeNameFixture : TempDatabaseFixture
{
    protected MessageBrokerBuilder Declare() => new MessageBrokerBuilder().UseSqlite(Database)
        .AddQueue("dead", o => o.Durable = true)
        .AddQueue("q", o => { o.Durable = true; o.DeadLetterQueue = "dead"; });

    protected void StoreRows(params byte[][] envelopes)
    {
        using var store = new SqliteMessageStore(Database);
        var next = store.Open().MaxId;
        store.Write(new StoreBatch(inserts: envelopes.Select(e => new StoredMessage(++next, "q", 0, 0, e)).ToList(), mustBeDurable: true));
    }
}
