using System.Globalization;
using MessageQueue;
using MessageQueue.CrashHelper;
using MessageQueue.Sqlite.Tests.Support;

// Usage: MessageQueue.CrashHelper <database> <run> [final]   (or: own <database> <count> [wait], see OwnerMode.cs)
// The store is SQLite, or LiteDB when the environment variable MQ_CRASH_STORE is "litedb" (with a checkpoint every
// 64 log pages, so that kills also land in checkpoints: LiteDB copying its log into the data file).
// Prints, one record per line, each ending in " ;" so that a line cut short by the kill is recognisable:
//   S <id> <deliveryCount> <ok|corrupt>   a message found in the queue at start (in queue order)
//   READY                                 start-up done; publishing and consuming begin
//   P <id>                                PublishAsync of <id> completed (the message is confirmed)
//   D <id> <deliveryCount> <ok|corrupt>   <id> was delivered
//   K <id>                                AckAsync of <id> is about to be called (the ack may take effect
//                                         even if the process dies before it returns)
//   A <id>                                AckAsync of <id> completed
//   LOG <level> <message>                 the broker logged a warning or an error
//   L <id>                                a message found in "limited" at start (a full RejectPublish queue)
//   U <id>                                a message found in "dedup" at start (a deduplicating queue)
//   PL <id> / RL <id>                     a publish to "limited" was confirmed / refused as full
//   PD <id>                               a publish to "dedup" was confirmed (its second publish follows)
//   DD <id>                               the second publish of <id> was reported a duplicate
// Message ids are "<run>-<publisher>-<sequence>". Every fourth delivered message is left unacked.
if (args is ["own", _, _, ..])
{
    return await MessageQueue.CrashHelper.OwnerMode.RunAsync(args);
}

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: MessageQueue.CrashHelper <database> <run> [final]");
    return 2;
}

var database = args[0];
var run = args[1];
var final = args.Length > 2 && args[2] == "final";
var output = Console.Out;
void Say(string line) => output.WriteLine(line + " ;");

var builder = new MessageBrokerBuilder();
builder = Environment.GetEnvironmentVariable("MQ_CRASH_STORE") == "litedb" ? builder.UseLiteDb(database, o => o.CheckpointPages = 64) : builder.UseSqlite(database);
await using var broker = builder
    .UseLoggerFactory(new LineLoggerFactory(line => Say("LOG " + line)))
    .AddQueue("work", o => o.Durable = true)
    .AddQueue("limited", o => { o.Durable = true; o.MaxLength = 20; o.Overflow = OverflowPolicy.RejectPublish; })
    .AddQueue("dedup", o => { o.Durable = true; o.DeduplicationWindow = TimeSpan.FromHours(1); })
    .Build();

foreach (var m in await broker.Management.PeekAsync("work", int.MaxValue))
{
    var message = (CrashMessage)m.Body;
    Say($"S {message.Id} {m.DeliveryCount} {(message.IsIntact ? "ok" : "corrupt")}");
}

foreach (var m in await broker.Management.PeekAsync("limited", int.MaxValue))
{
    Say($"L {((CrashMessage)m.Body).Id}");
}

foreach (var m in await broker.Management.PeekAsync("dedup", int.MaxValue))
{
    Say($"U {((CrashMessage)m.Body).Id}");
}

if (final)
{
    Say("DONE");
    return 0;
}

Say("READY");
var consumer = broker.Consume<CrashMessage>("work", o => o.Prefetch = 10_000);
var consuming = Task.Run(async () =>
{
    var seen = 0;
    while (true)
    {
        var delivery = await consumer.ReceiveAsync();
        var message = delivery.Message;
        Say($"D {message.Id} {delivery.DeliveryCount} {(message.IsIntact ? "ok" : "corrupt")}");
        if (++seen % 4 != 0)
        {
            Say($"K {message.Id}");
            await delivery.AckAsync();
            Say($"A {message.Id}");
        }
    }
});

var publishers = Enumerable.Range(0, 2).Select(p => Task.Run(async () =>
{
    for (var i = 0; ; i++)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"{run}-{p}-{i}");
        await broker.SendAsync("work", CrashMessage.For(id));
        Say($"P {id}");
    }
})).ToArray();

// Refusals and duplicates: what is refused or found a duplicate must never come back after a kill.
var refusing = Task.Run(async () =>
{
    for (var i = 0; ; i++)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"{run}-L-{i}");
        try
        {
            await broker.SendAsync("limited", CrashMessage.For(id));
            Say($"PL {id}");
        }
        catch (QueueFullException)
        {
            Say($"RL {id}");
        }
    }
});
var deduplicating = Task.Run(async () =>
{
    for (var i = 0; ; i++)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"{run}-D-{i}");
        var options = new PublishOptions { MessageId = id };
        await broker.SendAsync("dedup", CrashMessage.For(id), options);
        Say($"PD {id}");
        if ((await broker.SendAsync("dedup", CrashMessage.For(id), options)).IsDuplicate)
        {
            Say($"DD {id}");
        }
    }
});

// Runs until killed; if a task fails, say why and exit non-zero so the test sees it.
var failed = await Task.WhenAny([consuming, refusing, deduplicating, .. publishers]);
Console.Error.WriteLine(failed.Exception?.ToString() ?? "a loop ended");
return 1;

namespace MessageQueue.CrashHelper
{
    /// <summary>A message whose payload is derived from its id, so a damaged one is recognised.</summary>
    public sealed record CrashMessage(string Id, string Payload)
    {
        public bool IsIntact => Payload == PayloadOf(Id);

        public static CrashMessage For(string id) => new(id, PayloadOf(id));

        private static string PayloadOf(string id) => string.Concat(Enumerable.Repeat(id, 8));
    }
}
