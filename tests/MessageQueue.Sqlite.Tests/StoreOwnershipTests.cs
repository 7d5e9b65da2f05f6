using System.Diagnostics;
using MessageQueue.CrashHelper;
using MessageQueue.Storage;
using MessageQueue.Tests.Support;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// One broker per store file: a second broker (another process, or the same one) either waits for the owner to
/// release the file or fails <c>Build()</c> naming the file and the owner's process id; it never writes beside it
/// or deletes its rows. Before this, both reported healthy, the second one's publishes failed with
/// "UNIQUE constraint failed: mq_messages.id", and its start-up deleted the first one's lazy rows.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class StoreOwnershipTests : TempDatabaseFixture
{
    private const int Owned = 50;

    [Test]
    public async Task SecondBroker_InAnotherProcess_FailsBuild_NamingTheFileAndTheOwnersProcess_AndTakesNothing()
    {
        await using var owner = await Owner.StartAsync(Database, Owned);

        var ex = Assert.Throws<MessageStoreException>(() => Declare(new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.FromMilliseconds(300))).Build());
        Assert.Multiple(() =>
        {
            Assert.That(ex!.Message, Does.Contain(Path.GetFullPath(Database)));
            Assert.That(ex.Message, Does.Contain($"process {owner.ProcessId}"));
            Assert.That(ex.Message, Does.Contain("OwnerWaitTimeout"));
        });

        Assert.That(await owner.ReleaseAsync(), Is.EqualTo(Owned), "the owner still has every message: nothing was deleted under it");
        await using var after = Declare(new MessageBrokerBuilder().UseSqlite(Database)).Build();
        Assert.That(after.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(Owned));
    }

    [Test]
    public async Task SecondBroker_Waiting_TakesOverWhenTheOwnerIsDisposed_WithEveryMessage()
    {
        await using var owner = await Owner.StartAsync(Database, Owned);
        var clock = Stopwatch.StartNew();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lockPath = Path.GetFullPath(Database) + ".lock";
        void OnWaiting(string path)
        {
            if (path == lockPath)
            {
                waiting.TrySetResult();
            }
        }

        StoreFileOwner.Waiting += OnWaiting;
        try
        {
            var building = Task.Run(() => Declare(new MessageBrokerBuilder()
                .UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.FromSeconds(60))).Build());
            await waiting.Task.WithSafety(); // the second broker found the file owned and waits
            Assert.That(building.IsCompleted, Is.False, "the second broker waits while the first owns the file");
            await TakeOverAsync(owner, building, clock);
        }
        finally
        {
            StoreFileOwner.Waiting -= OnWaiting;
        }
    }

    private static async Task TakeOverAsync(Owner owner, Task<IMessageBroker> building, Stopwatch clock)
    {

        Assert.That(await owner.ReleaseAsync(), Is.EqualTo(Owned));
        await using var successor = await building.WithSafety();
        Assert.That(successor.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(Owned));
        var consumer = successor.Consume<CrashMessage>("lazy");
        for (var i = 0; i < Owned; i++)
        {
            var d = await consumer.ReceiveAsync().AsTask().WithSafety();
            Assert.That(d.Message.Id, Is.EqualTo($"owned-{i}"));
            await d.AckAsync();
        }

        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)));
    }

    [Test]
    public async Task Owner_KilledWithSigkill_ReleasesTheFileAtOnce()
    {
        var owner = await Owner.StartAsync(Database, Owned);
        owner.Kill();
        await using var successor = Declare(new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.FromSeconds(10))).Build();
        Assert.That(successor.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(Owned));
        await owner.DisposeAsync();
    }

    [Test]
    public async Task SecondBroker_InThisProcess_FailsBuild_AndTheFirstKeepsWorking()
    {
        await using var first = Declare(new MessageBrokerBuilder().UseSqlite(Database)).Build();
        await first.SendAsync("lazy", CrashMessage.For("one"));

        var ex = Assert.Throws<MessageStoreException>(() => Declare(new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.Zero)).Build());
        Assert.That(ex!.Message, Does.Contain($"process {Environment.ProcessId}"));

        await first.SendAsync("lazy", CrashMessage.For("two"));
        Assert.That(first.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(2));
    }

    [Test]
    public async Task OwnerReleasedByDispose_NextBrokerOpensAtOnce()
    {
        await using (var first = Declare(new MessageBrokerBuilder().UseSqlite(Database)).Build())
        {
            await first.SendAsync("lazy", CrashMessage.For("one"));
        }

        await using var second = Declare(new MessageBrokerBuilder().UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.Zero)).Build();
        Assert.That(second.Management.GetQueueInfo("lazy").Ready, Is.EqualTo(1));
    }

    [Test]
    public void OwnerWaitTimeout_Negative_IsRefusedNamingTheOption()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new MessageBrokerBuilder()
            .UseSqlite(Database, o => o.OwnerWaitTimeout = TimeSpan.FromSeconds(-2)));
        Assert.That(ex!.Message, Does.Contain("OwnerWaitTimeout"));
    }

    private static MessageBrokerBuilder Declare(MessageBrokerBuilder builder) =>
        builder.AddQueue("lazy", o => { o.Durable = true; o.Mode = QueueMode.Lazy; });

    /// <summary>The helper process in owner mode (see MessageQueue.CrashHelper/OwnerMode.cs).</summary>
    private sealed class Owner : IAsyncDisposable
    {
        private readonly Process _process;

        private Owner(Process process, int processId)
        {
            _process = process;
            ProcessId = processId;
        }

        internal int ProcessId { get; }

        internal static async Task<Owner> StartAsync(string database, int count)
        {
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MessageQueue.CrashHelper.dll"));
            start.ArgumentList.Add("own");
            start.ArgumentList.Add(database);
            start.ArgumentList.Add(count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var process = Process.Start(start) ?? throw new InvalidOperationException("the helper did not start");
            var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (line is null || !line.StartsWith("OWNER ", StringComparison.Ordinal))
            {
                var error = await process.StandardError.ReadToEndAsync();
                throw new InvalidOperationException($"the owner did not start: '{line}' {error}");
            }

            var fields = line.Split(' ');
            Assert.That(fields[2], Is.EqualTo(count.ToString(System.Globalization.CultureInfo.InvariantCulture)), "the owner holds every message");
            return new Owner(process, int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture));
        }

        /// <summary>Disposes the owner's broker; returns how many messages it still held.</summary>
        internal async Task<int> ReleaseAsync()
        {
            await _process.StandardInput.WriteLineAsync();
            await _process.StandardInput.FlushAsync();
            var line = await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.That(line, Does.StartWith("RELEASED "));
            Assert.That(_process.ExitCode, Is.Zero);
            return int.Parse(line!.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }

        internal void Kill()
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        public ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            _process.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
