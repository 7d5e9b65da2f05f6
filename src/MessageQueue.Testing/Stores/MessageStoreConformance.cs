namespace MessageQueue.Testing.Stores;

/// <summary>
/// What every <see cref="IMessageStore"/> must do (see the remarks on <see cref="IMessageStore"/>), as checks a store
/// author runs from any test framework. Derive from it, say how to create your store on a location and how to bring
/// about each fault, and run every name in <see cref="Checks"/> through <see cref="RunAsync"/>. With NUnit:
/// <code>
/// public sealed class MyStoreConformance : MessageStoreConformance
/// {
///     [TestCaseSource(typeof(MessageStoreConformance), nameof(Checks))]
///     public Task Conforms(string check) => RunAsync(check);
///
///     protected override IMessageStore CreateStore(string location) => new MyStore(location);
///     ...
/// }
/// </code>
/// With xUnit: <c>[Theory, MemberData(nameof(CheckData))] public Task Conforms(string check) => RunAsync(check);</c>
/// with <c>public static TheoryData&lt;string&gt; CheckData => new(Checks);</c>. A failed check throws a
/// <see cref="MessageQueueAssertionException"/> that names the rule and shows what the store did. Each run gets a
/// fresh location (<see cref="NewLocation"/>), deleted after it (<see cref="DeleteLocation"/>); one instance runs one
/// check at a time.
/// </summary>
public abstract partial class MessageStoreConformance
{
    private readonly List<IDisposable> _open = [];
    private int _running;

    /// <summary>Gets the location of the current check's store.</summary>
    protected string Location { get; private set; } = "";

    /// <summary>Gets how long one check may take before it fails; one minute by default.</summary>
    protected virtual TimeSpan CheckTimeout => TimeSpan.FromMinutes(1);

    /// <summary>Runs one check on a fresh location and deletes the location after it.</summary>
    /// <param name="check">One of <see cref="Checks"/>.</param>
    /// <returns>A task that fails with a <see cref="MessageQueueAssertionException"/> if the store breaks the rule.</returns>
    /// <exception cref="ArgumentException"><paramref name="check"/> is not one of <see cref="Checks"/>.</exception>
    /// <exception cref="InvalidOperationException">This instance is running another check.</exception>
    public async Task RunAsync(string check)
    {
        ArgumentException.ThrowIfNullOrEmpty(check);
        var run = All.FirstOrDefault(c => c.Name == check).Run
            ?? throw new ArgumentException($"There is no store conformance check named '{check}'. The checks are: {string.Join(", ", Checks)}.", nameof(check));
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            throw new InvalidOperationException("This conformance instance is running another check; run checks in parallel on separate instances.");
        }

        try
        {
            Location = NewLocation();
            try
            {
                await Task.Run(() => run(this)).WaitAsync(CheckTimeout).ConfigureAwait(false);
            }
            catch (TimeoutException ex)
            {
                throw new MessageQueueAssertionException($"The check '{check}' did not finish within {CheckTimeout}: the store hangs.", ex);
            }
            finally
            {
                CloseAndDelete();
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>Creates (does not open) a store on <paramref name="location"/>. A second store on a location that an
    /// open one owns must fail <see cref="IMessageStore.Open"/> within a few seconds.</summary>
    /// <param name="location">Where the store keeps its data (from <see cref="NewLocation"/>).</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateStore(string location);

    /// <summary>Creates a store whose storage is full: it opens, but a write of a few megabytes cannot fit.</summary>
    /// <param name="location">The location.</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateFullStore(string location);

    /// <summary>Creates a store that may only read <paramref name="location"/> (a read-only file, a read-only mode).</summary>
    /// <param name="location">The location, which holds a store already.</param>
    /// <returns>The store.</returns>
    protected abstract IMessageStore CreateReadOnlyStore(string location);

    /// <summary>Marks the closed store at <paramref name="location"/> as written by a newer version of the store (a
    /// schema it does not understand).</summary>
    /// <param name="location">The location, which holds a closed store.</param>
    protected abstract void MakeSchemaNewer(string location);

    /// <summary>Damages the closed store at <paramref name="location"/> (garbage over its files).</summary>
    /// <param name="location">The location, which holds a closed store.</param>
    protected abstract void Corrupt(string location);

    /// <summary>Gives a fresh location for one check.</summary>
    /// <returns>By default a path in the temporary folder.</returns>
    protected virtual string NewLocation() => Path.Combine(Path.GetTempPath(), $"mq-contract-{Guid.NewGuid():N}.db");

    /// <summary>Deletes what a check left at <paramref name="location"/>.</summary>
    /// <param name="location">The location.</param>
    protected virtual void DeleteLocation(string location)
    {
        var folder = Path.GetDirectoryName(location)!;
        foreach (var file in Directory.GetFiles(folder, Path.GetFileName(location) + "*"))
        {
            File.Delete(file);
        }
    }

    private void CloseAndDelete()
    {
        foreach (var d in _open)
        {
            d.Dispose();
        }

        _open.Clear();
        DeleteLocation(Location);
    }

    private IMessageStore OpenStore() => OpenStore(out _);

    private IMessageStore OpenStore(out StoreContents contents)
    {
        var store = Track(CreateStore(Location));
        contents = store.Open();
        return store;
    }

    private IMessageStore Track(IMessageStore store)
    {
        _open.Add(store);
        return store;
    }

    private static StoredMessage Row(long id, string queue, long due = 0) => new(id, queue, 0, due, Body(id));

    private static byte[] Body(long id) => [.. BitConverter.GetBytes(id), (byte)(id % 251), 1, 2, 3];

    private static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexString(bytes.Span);

    private static string Hex(long id) => Convert.ToHexString(Body(id));

    private static long[] Ids(IEnumerable<StoredMessage> rows) => [.. rows.Select(r => r.Id)];
}
