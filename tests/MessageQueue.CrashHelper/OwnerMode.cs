using MessageQueue.Sqlite.Tests.Support;

namespace MessageQueue.CrashHelper;

/// <summary>
/// <c>MessageQueue.CrashHelper own &lt;database&gt; &lt;count&gt;</c>: a broker that owns the database, with a lazy durable
/// queue "lazy" holding <c>count</c> messages (published if it holds none). Prints <c>OWNER &lt;pid&gt; ;</c> once it is
/// built, then holds the database until a line (or end of input) arrives on stdin, disposes the broker and prints
/// <c>RELEASED &lt;ready&gt; ;</c>. With <c>wait</c> as a fourth argument it waits as long as it takes for the database.
/// </summary>
internal static class OwnerMode
{
    internal static async Task<int> RunAsync(string[] args)
    {
        var database = args[1];
        var count = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
        var wait = args.Length > 3 && args[3] == "wait";
        void Say(string line) => Console.Out.WriteLine(line + " ;");
        try
        {
            var broker = new MessageBrokerBuilder()
                .UseSqlite(database, o => o.OwnerWaitTimeout = wait ? Timeout.InfiniteTimeSpan : TimeSpan.Zero)
                .UseLoggerFactory(new LineLoggerFactory(line => Say("LOG " + line)))
                .AddQueue("lazy", o => { o.Durable = true; o.Mode = QueueMode.Lazy; })
                .Build();
            await using (broker.ConfigureAwait(false))
            {
                if (broker.Management.GetQueueInfo("lazy").Ready == 0)
                {
                    for (var i = 0; i < count; i++)
                    {
                        await broker.SendAsync("lazy", CrashMessage.For($"owned-{i}")).ConfigureAwait(false);
                    }
                }

                Say($"OWNER {Environment.ProcessId} {broker.Management.GetQueueInfo("lazy").Ready}");
                await Console.In.ReadLineAsync().ConfigureAwait(false);
                Say($"RELEASED {broker.Management.GetQueueInfo("lazy").Ready}");
            }

            return 0;
        }
        catch (MessageStoreException ex)
        {
            Say($"REFUSED {ex.Message.ReplaceLineEndings(" ")}");
            return 3;
        }
    }
}
