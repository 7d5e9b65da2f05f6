using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests.Differential;

/// <summary>
/// Differential tests (issue 18, point 6): one scripted scenario runs on the in-memory broker and on the RabbitMQ
/// transport (the private node), each writing what it observes to a transcript; the two transcripts must be the same
/// line for line. Transcripts hold only what both backends promise (bodies, order, routing, death reasons and
/// histories, exceptions), never ids or times. Skipped, with the reason, when there is no RabbitMQ node.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public abstract class DifferentialFixture
{
    /// <summary>Runs <paramref name="script"/> on both backends and asserts the transcripts are the same; returns it.</summary>
    protected static async Task<IReadOnlyList<string>> SameOnBothAsync(Action<MessageBrokerBuilder, Func<string, string>> topology, Func<Scenario, Task> script)
    {
        var url = RabbitMqNode.RequireUrl().ToString();
        var memory = await RunAsync(topology, script, url: null);
        var rabbit = await RunAsync(topology, script, url);
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, memory));
        Assert.That(memory, Is.Not.Empty, "the scenario observed nothing");
        Assert.That(rabbit, Is.EqualTo(memory), "RabbitMQ's transcript differs from the in-memory broker's");
        return memory;
    }

    private static async Task<List<string>> RunAsync(Action<MessageBrokerBuilder, Func<string, string>> topology, Func<Scenario, Task> script, string? url)
    {
        var prefix = $"d{Guid.NewGuid():N}"[..9];
        var names = new HashSet<string>();
        string N(string name)
        {
            var full = $"{prefix}-{name}";
            names.Add(full);
            return full;
        }

        var builder = new MessageBrokerBuilder();
        topology(builder, N);
        var database = Path.Combine(Path.GetTempPath(), $"{prefix}.db");
        if (url is not null)
        {
            builder.UseRabbitMq(url);
        }
        else
        {
            builder.UseSqlite(database); // the in-process broker keeps durable queues as RabbitMQ does
        }

        using var patience = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CurrentContext.CancellationToken);
        patience.CancelAfter(TimeSpan.FromSeconds(20));
        try
        {
            await using var broker = builder.Build();
            var scenario = new Scenario(broker, prefix, N, patience.Token);
            await script(scenario);
            return scenario.Transcript;
        }
        finally
        {
            foreach (var file in Directory.GetFiles(Path.GetTempPath(), $"{prefix}.db*"))
            {
                File.Delete(file);
            }

            if (url is not null)
            {
                await using var connection = await RabbitMqNode.ConnectAsync();
                foreach (var name in names)
                {
                    await using var channel = await connection.CreateChannelAsync();
                    await channel.QueueDeleteAsync(name);
                    await channel.ExchangeDeleteAsync(name);
                }
            }
        }
    }
}

/// <summary>What a scripted scenario works with: the broker, its names, and the transcript it writes.</summary>
public sealed class Scenario(IMessageBroker broker, string prefix, Func<string, string> names, CancellationToken patience)
{
    public IMessageBroker Broker { get; } = broker;

    public List<string> Transcript { get; } = [];

    public CancellationToken Patience { get; } = patience;

    /// <summary>The full name of a queue or exchange of this run.</summary>
    public string N(string name) => names(name);

    /// <summary>A full name as the script knows it.</summary>
    public string Local(string name) => name.StartsWith(prefix + "-", StringComparison.Ordinal) ? name[(prefix.Length + 1)..] : name;

    public void Log(string line) => Transcript.Add(line);

    public async Task<Delivery<T>> ReceiveAsync<T>(IConsumer<T> consumer) => await consumer.ReceiveAsync(Patience);

    /// <summary>Receives <paramref name="count"/> messages from <paramref name="queue"/>, acks them, and logs them.</summary>
    public async Task DrainAsync<T>(string queue, int count, Func<Delivery<T>, string>? describe = null)
    {
        await using var consumer = Broker.Consume<T>(N(queue));
        var seen = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var d = await ReceiveAsync(consumer);
            seen.Add(describe?.Invoke(d) ?? $"{d.Message}");
            await d.AckAsync();
        }

        Log($"{queue}: {string.Join(", ", seen)}");
    }

    /// <summary>A dead letter's history as both backends record it.</summary>
    public string Death(MessageProperties p)
    {
        var deaths = string.Join("; ", p.Deaths.Select(d => $"{d.Reason} in {Local(d.Queue)} x{d.Count} via '{Local(d.Exchange)}' [{string.Join(",", d.RoutingKeys.Select(Local))}]"));
        var first = p.Headers.TryGetValue("x-first-death-reason", out var reason) ? $" first {reason} in {Local($"{p.Headers["x-first-death-queue"]}")}" : "";
        var why = p.Headers.TryGetValue("x-rejection-reason", out var text) ? $" because '{text}'" : "";
        var exception = p.Headers.TryGetValue("x-exception-type", out var type) ? $" after {type}: {p.Headers["x-exception-message"]}" : "";
        return deaths + first + why + exception;
    }
}
