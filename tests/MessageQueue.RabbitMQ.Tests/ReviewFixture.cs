using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>What the review tests share: names unique per test (deleted on the server afterwards), brokers and
/// consumers owned by the test (each disposed afterwards, even when another fails), and a patience of 30 seconds.</summary>
[TestFixture]
[CancelAfter(90_000)]
public abstract class ReviewFixture
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly HashSet<string> _names = [];
    private readonly string _tag;
    private string _prefix = "";
    private CancellationTokenSource _patience = null!;

    /// <param name="tag">What starts this fixture's names (for example <c>i18</c>).</param>
    protected ReviewFixture(string tag) => _tag = tag;

    protected CancellationToken Patience => _patience.Token;

    [SetUp]
    public void NewPrefix()
    {
        RabbitMqNode.RequireUrl();
        _prefix = $"{_tag}{Guid.NewGuid():N}"[..11];
        _patience = CancellationTokenSource.CreateLinkedTokenSource(TestContext.CurrentContext.CancellationToken);
        _patience.CancelAfter(TimeSpan.FromSeconds(30));
    }

    [TearDown]
    public async Task CleanUpAsync()
    {
        var failures = new List<Exception>();
        try
        {
            for (var i = _owned.Count - 1; i >= 0; i--)
            {
                try
                {
                    await _owned[i].DisposeAsync(); // each one, or a broker left running skews the next test
                }
#pragma warning disable CA1031 // Reported below, after the rest is disposed.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    failures.Add(ex);
                }
            }
        }
        finally
        {
            _owned.Clear();
            _patience.Dispose();
            await using var connection = await RabbitMqNode.ConnectAsync();
            foreach (var name in _names)
            {
                await using var channel = await connection.CreateChannelAsync();
                await channel.QueueDeleteAsync(name);
                await channel.ExchangeDeleteAsync(name);
            }
        }

        if (failures.Count > 0)
        {
            throw new AggregateException("Disposing failed", failures);
        }
    }

    protected string N(string name)
    {
        _names.Add($"{_prefix}-{name}");
        return $"{_prefix}-{name}";
    }

    protected T Own<T>(T disposable)
        where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    /// <summary>A broker on the test node (or at <paramref name="url"/>), owned by the test.</summary>
    protected IMessageBroker Build(Action<MessageBrokerBuilder> topology, string? url = null, Action<RabbitMqOptions>? rabbit = null)
    {
        var builder = new MessageBrokerBuilder();
        topology(builder);
        builder.UseRabbitMq(url ?? RabbitMqNode.RequireUrl().ToString(), rabbit);
        return Own(builder.Build());
    }

    /// <summary>Returns once <paramref name="condition"/> holds (checked between yields, bounded by the patience).</summary>
    protected async Task UntilAsync(Func<bool> condition)
    {
        while (!condition())
        {
            Patience.ThrowIfCancellationRequested();
            await Task.Yield();
        }
    }

    /// <summary><paramref name="task"/>'s result, or the test fails saying what did not come in time.</summary>
    protected async Task<T> Within<T>(Task<T> task, string what)
    {
        try
        {
            return await task.WaitAsync(Patience);
        }
        catch (OperationCanceledException) when (Patience.IsCancellationRequested)
        {
            Assert.Fail($"Timed out: {what}");
            throw;
        }
    }
}
