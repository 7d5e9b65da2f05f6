using System.Reflection;
using MessageQueue.Storage;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

public sealed record Boxed<T>(T Item);

/// <summary>Only ever the type argument of a <see cref="Boxed{T}"/> written as another process wrote it (never
/// named in this process, as in a process that has just started).</summary>
public sealed record BoxedItem(int Id);

public sealed record BoxedOther(int Id);

[MessageType("tests.review.shared-name")]
public sealed record SharedNameOne(int Id);

[MessageType("tests.review.shared-name")]
public sealed record SharedNameTwo(int Id);

/// <summary>
/// Review of "Stable message type names" (cba6c99).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class MessageTypeNameReviewTests : StoredTypeNameFixture
{
    /// <summary>The default name of a closed generic type is its FullName, which holds the type arguments
    /// assembly-qualified (commas and all). Read back by a process that has not published that type yet (any
    /// process after a restart), the comma makes it "an assembly-qualified name stored before", Type.GetType finds
    /// no generic type of that name in MessageQueue.dll or CoreLib, and the message is dead-lettered as of a type
    /// that "no longer exists". In the process that stored it, the cache hides this.</summary>
    [Test]
    public async Task GenericMessageType_StoredUnderItsDefaultName_IsReadAfterARestart()
    {
        // What this process would store for a Boxed<BoxedOther> (and what an earlier process stored for Boxed<BoxedItem>).
        Assert.That(MessageTypeNames.NameOf(typeof(Boxed<BoxedOther>)), Is.EqualTo(typeof(Boxed<BoxedOther>).FullName).And.Contain(","));

        // A row stored by the previous process; this one has not published a Boxed<BoxedItem> (yet).
        StoreRows(Envelope.Encode(new Boxed<BoxedItem>(new BoxedItem(1)), new MessageProperties(), "", "q", 0, new JsonMessageSerializer(), typeof(Boxed<BoxedItem>).FullName!));

        await using var broker = Declare().Build();
        var dead = await broker.Management.PeekAsync("dead");
        Assert.Multiple(() =>
        {
            Assert.That(dead, Is.Empty, dead.Count > 0 ? (string?)dead[0].Properties.Headers["x-rejection-reason"] : null);
            Assert.That(broker.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "the stored Boxed<BoxedItem> is not in its queue after the restart");
        });
    }

    /// <summary>A body of a framework type (a string, an int, a Guid, an array...) is stored under its full name
    /// ("System.String"). A process that has not published that type yet (any process after a restart) searches
    /// only the assemblies that reference MessageQueue, which CoreLib does not (and arrays are in no assembly's
    /// GetTypes): the stored message is dead-lettered as of an unknown type. Before, "System.String, System.Private.CoreLib"
    /// resolved.</summary>
    [Test]
    public async Task FrameworkTypeBody_StoredInADurableQueue_IsReadAfterARestart()
    {
        await using (var broker = Declare().Build())
        {
            await broker.SendAsync("q", "hello");
        }

        ForgetInThisProcess(typeof(string).FullName!); // the restart: a new process has not named the type yet

        await using var restarted = Declare().Build();
        var dead = await restarted.Management.PeekAsync("dead");
        Assert.Multiple(() =>
        {
            Assert.That(dead, Is.Empty, dead.Count > 0 ? (string?)dead[0].Properties.Headers["x-rejection-reason"] : null);
            Assert.That(restarted.Management.GetQueueInfo("q").Ready, Is.EqualTo(1), "the stored string is not in its queue after the restart");
        });
    }

    /// <summary>Two types declare one name. A row stored under it (by a process that used the other type) must be
    /// dead-lettered as ambiguous; but once this process has named one of the two types (any publish of it, even to a
    /// memory queue), NameOf records the name as that type's, without looking for others, replacing even an
    /// "ambiguous" result: the stored body is silently deserialized as the wrong type.</summary>
    [Test]
    public async Task AmbiguousStoredName_IsNotResolvedToWhicheverTypeThisProcessUsedFirst()
    {
        // A SharedNameTwo stored by an earlier process (the only one of the two it used).
        StoreRows(Envelope.Encode(new SharedNameTwo(2), new MessageProperties(), "", "q", 0, new JsonMessageSerializer(), "tests.review.shared-name"));

        // This process publishes a SharedNameOne to a memory queue.
        await using (var memory = new MessageBrokerBuilder().AddQueue("m").Build())
        {
            await memory.SendAsync("m", new SharedNameOne(1));
            Assert.That((await memory.Management.PeekAsync("m"))[0].Properties.MessageType, Is.EqualTo("tests.review.shared-name"));
        }

        await using var broker = Declare().Build();
        var ready = await broker.Management.PeekAsync("q");
        Assert.Multiple(() =>
        {
            Assert.That(ready.Select(m => m.Body.GetType().Name), Is.Empty, "the stored SharedNameTwo was read as another type");
            Assert.That(broker.Management.GetQueueInfo("dead").Ready, Is.EqualTo(1), "an ambiguous name is dead-lettered naming it");
        });
    }

    /// <summary>A name is searched for in the loaded assemblies once; a miss is cached for the life of the process
    /// unless this process publishes the type. A type whose assembly is loaded later (a plugin, or a contracts
    /// assembly first touched after Build) stays unknown: every later read in the process (another broker, a lazy
    /// queue's refill, a redrive) dead-letters its stored messages although the type is loaded now.</summary>
    [Test]
    public async Task NameSearchedBeforeItsAssemblyLoaded_IsFoundOnceItIsLoaded()
    {
        const string name = "tests.review.late-message";
        var path = EmitContractsAssembly(name, out var typeName);
        var serializer = new JsonMessageSerializer();

        StoreRows(Envelope.Encode(new Order(1), new MessageProperties(), "", "q", 0, serializer, name));
        await using (var first = Declare().Build())
        {
            // The contracts assembly is not loaded yet: dead-lettered (nothing could know the type then).
            Assert.That(first.Management.GetQueueInfo("dead").Ready, Is.EqualTo(1));
        }

        var assembly = Assembly.LoadFrom(path);
        Assert.That(assembly.GetType(typeName), Is.Not.Null);
        StoreRows(Envelope.Encode(new Order(2), new MessageProperties(), "", "q", 0, serializer, name));

        await using var second = Declare().Build();
        var ready = await second.Management.PeekAsync("q");
        var dead = await second.Management.PeekAsync("dead");
        Assert.That(ready.Select(m => m.Body.GetType().FullName), Is.EqualTo(new[] { typeName }),
            "the type's assembly is loaded now, yet the stored message is dead-lettered: " + string.Join(" | ", dead.Skip(1).Select(d => d.Properties.Headers["x-rejection-reason"])));
    }

    /// <summary>Removes what this process learnt about <paramref name="name"/> (as a process that has just started).</summary>
    private static void ForgetInThisProcess(string name)
    {
        var types = typeof(MessageTypeNames).GetField("Types", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null);
        ((System.Collections.IDictionary)types!).Remove(name);
        var names = typeof(MessageTypeNames).GetField("Names", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null);
        ((System.Collections.IDictionary)names!).Remove(typeof(string));
    }

    /// <summary>Writes (without loading it) an assembly with one message type declaring <paramref name="name"/>.</summary>
    private static string EmitContractsAssembly(string name, out string typeName)
    {
        var assemblyName = $"ReviewLateContracts{Guid.NewGuid():N}";
        typeName = "Review.Late.LateMessage";
        var builder = new System.Reflection.Emit.PersistedAssemblyBuilder(new AssemblyName(assemblyName), typeof(object).Assembly);
        var module = builder.DefineDynamicModule(assemblyName);
        var type = module.DefineType(typeName, TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class, typeof(object));
        type.DefineDefaultConstructor(MethodAttributes.Public);
        type.SetCustomAttribute(new System.Reflection.Emit.CustomAttributeBuilder(typeof(MessageTypeAttribute).GetConstructor([typeof(string)])!, [name]));
        type.CreateType();
        var path = Path.Combine(Path.GetTempPath(), assemblyName + ".dll");
        using (var file = File.Create(path))
        {
            builder.Save(file);
        }

        return path;
    }
}
