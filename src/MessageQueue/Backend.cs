namespace MessageQueue;

/// <summary>
/// What the broker's backend can honour. <c>Build()</c> checks every queue's options against it and refuses, in its
/// <see cref="TopologyException"/>, an option the backend cannot honour, naming the option and the backend, instead of
/// accepting it and behaving differently. Today there are two backends: in memory (no store) and a message store
/// (<c>UseSqlite</c>, <c>UseStore</c>); the RabbitMQ transport is a third, with its own list.
/// </summary>
internal sealed class Backend
{
    private readonly Func<string, QueueOptions, IEnumerable<string>>? _transportRefusals;

    private Backend(string name, bool stores, string remedy, Func<string, QueueOptions, IEnumerable<string>>? transportRefusals = null)
    {
        Name = name;
        Stores = stores;
        Remedy = remedy;
        _transportRefusals = transportRefusals;
    }

    /// <summary>A transport to another broker (RabbitMQ): its server keeps durable queues; <paramref name="refusals"/>
    /// lists, for a queue, the options the transport cannot honour (each a whole sentence).</summary>
    internal static Backend Transport(string name, Func<string, QueueOptions, IEnumerable<string>> refusals) => new(name, stores: true, "", refusals);

    /// <summary>A broker without a message store: nothing survives the process.</summary>
    internal static Backend InMemory { get; } = new("in-memory backend (no message store)", stores: false,
        "call UseSqlite (package MessageQueue.Sqlite) or UseStore");

    /// <summary>A broker with a message store (SQLite today).</summary>
    internal static Backend Store { get; } = new("message store backend", stores: true, "");

    /// <summary>A test harness's broker: durable and lazy queues are accepted and kept in memory (their store, if any,
    /// is not opened), so tests of handlers need no database.</summary>
    internal static Backend InMemoryForTests { get; } = new("test harness (durable queues kept in memory)", stores: true, "");

    internal string Name { get; }

    /// <summary>Whether queues can keep messages on disk (durable and lazy queues).</summary>
    internal bool Stores { get; }

    private string Remedy { get; }

    /// <summary>Lists the options of <paramref name="queue"/> this backend cannot honour.</summary>
    internal IEnumerable<string> Refuse(string queue, QueueOptions options)
    {
        if (!Stores && options.Durable)
        {
            yield return Refusal(queue, $"{nameof(QueueOptions.Durable)} = true", "it keeps messages only in memory");
        }

        if (!Stores && options.Mode == QueueMode.Lazy)
        {
            yield return Refusal(queue, $"{nameof(QueueOptions.Mode)} = {nameof(QueueMode.Lazy)}", "a lazy queue keeps its backlog in the store");
        }

        if (_transportRefusals is not null)
        {
            foreach (var refusal in _transportRefusals(queue, options))
            {
                yield return refusal;
            }
        }
    }

    private string Refusal(string queue, string option, string why) =>
        $"Queue '{queue}' sets {option}, which the {Name} cannot honour: {why}; {Remedy}.";
}
