using MessageQueue.Sqlite.Tests.Support;
using MessageQueue.Tests.Support;
using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace MessageQueue.Sqlite.Tests;

/// <summary>
/// Kills a child process (MessageQueue.CrashHelper) that publishes and acks durable messages with SIGKILL at
/// random moments, restarts it on the same database, and checks what it finds against what the killed runs
/// reported as confirmed and acked.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CrashTests : TempDatabaseFixture
{
    private const int Kills = 10;
    private string _store = "sqlite";

    [TestCase("sqlite")]
    [TestCase("litedb")]
    [CancelAfter(180_000)]
    public async Task KilledAtRandomPoints_ConfirmedSurvive_NothingDuplicatedOrCorrupt(string store)
    {
        _store = store;
        var seed = Environment.TickCount;
        await TestContext.Out.WriteLineAsync($"seed {seed}");
        var random = new Random(seed);
        var confirmed = new HashSet<string>(StringComparer.Ordinal);
        var acked = new HashSet<string>(StringComparer.Ordinal);
        var limited = new HashSet<string>(StringComparer.Ordinal);
        var refused = new HashSet<string>(StringComparer.Ordinal);
        var deduplicated = new HashSet<string>(StringComparer.Ordinal);
        var killedWhilePublishing = 0;

        for (var run = 1; run <= Kills; run++)
        {
            var delay = TimeSpan.FromMilliseconds(random.Next(30, 800));
            var records = await RunChildAsync(run.ToString(System.Globalization.CultureInfo.InvariantCulture), killAfter: delay);
            CheckRecovered(records, run, confirmed, acked);
            CheckRefusalsAndDuplicates(records, run, limited, refused, deduplicated);
            limited.UnionWith(records.Where(r => r.Kind == "PL").Select(r => r.Id));
            refused.UnionWith(records.Where(r => r.Kind == "RL").Select(r => r.Id));
            deduplicated.UnionWith(records.Where(r => r.Kind == "PD").Select(r => r.Id));

            var deliveries = records.Where(r => r.Kind == "D").ToList();
            Assert.That(deliveries.Where(d => d.Fields[2] != "ok"), Is.Empty, $"run {run}: a delivered message was corrupt");
            Assert.That(deliveries.GroupBy(d => d.Id).Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, $"run {run}: a message was delivered twice in one run");
            var published = records.Where(r => r.Kind == "P").Select(r => r.Id).ToList();
            killedWhilePublishing += published.Count > 0 ? 1 : 0;
            confirmed.UnionWith(published);
            Assert.That(records.Where(r => r.Kind == "A").Select(r => r.Id).Except(records.Where(r => r.Kind == "K").Select(r => r.Id)), Is.Empty);
            acked.UnionWith(records.Where(r => r.Kind == "K").Select(r => r.Id)); // an ack under way when the process died may have been written

            await TestContext.Out.WriteLineAsync($"run {run}: killed after {delay.TotalMilliseconds} ms, {published.Count} confirmed, {deliveries.Count} delivered");
        }

        var final = await RunChildAsync("final", killAfter: null);
        var left = CheckRecovered(final, Kills + 1, confirmed, acked);
        CheckRefusalsAndDuplicates(final, Kills + 1, limited, refused, deduplicated);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(killedWhilePublishing, Is.GreaterThanOrEqualTo(Kills / 2), "kill points that hit a publishing process");
            Assert.That(confirmed, Has.Count.GreaterThan(100), "the children confirmed too little to prove anything");
            Assert.That(left, Is.Not.Empty, "unacked messages should be left at the end");
            Assert.That(IntegrityCheck(), Is.EqualTo("ok"));
            Assert.That(refused, Has.Count.GreaterThan(100), "the children saw too few refusals to prove anything");
            Assert.That(deduplicated, Has.Count.GreaterThan(100), "the children deduplicated too little to prove anything");
        }
    }

    /// <summary>What a child found in the full queue and the deduplicating one at start: no refused publish came
    /// back, nothing is there twice, and every confirmed deduplicated publish is there.</summary>
    private static void CheckRefusalsAndDuplicates(List<Record> records, int run, HashSet<string> limited, HashSet<string> refused, HashSet<string> deduplicated)
    {
        var inLimited = records.Where(r => r.Kind == "L").Select(r => r.Id).ToList();
        var inDedup = records.Where(r => r.Kind == "U").Select(r => r.Id).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(inLimited.Where(refused.Contains), Is.Empty, $"start of run {run}: a publish refused as full came back");
            Assert.That(inLimited, Has.Count.LessThanOrEqualTo(20), $"start of run {run}: the full queue is over its limit");
            Assert.That(inDedup.GroupBy(id => id).Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, $"start of run {run}: a deduplicated message is there twice");
            Assert.That(deduplicated.Where(id => !inDedup.Contains(id)).Take(10), Is.Empty, $"start of run {run}: a confirmed deduplicated publish was lost");
        }
    }

    /// <summary>What a child found in the queue at start: every confirmed message not acked is there, nothing
    /// twice, nothing damaged, each publisher's messages in their order.</summary>
    private static HashSet<string> CheckRecovered(List<Record> records, int run, HashSet<string> confirmed, HashSet<string> acked)
    {
        var found = records.Where(r => r.Kind == "S").ToList();
        var ids = found.Select(r => r.Id).ToList();
        var set = new HashSet<string>(ids, StringComparer.Ordinal);
        var missing = confirmed.Where(id => !acked.Contains(id) && !set.Contains(id)).Take(10).ToList();
        var outOfOrder = found
            .Select(r => r.Id.Split('-'))
            .GroupBy(p => (p[0], p[1]), p => int.Parse(p[2], System.Globalization.CultureInfo.InvariantCulture))
            .Where(g => !g.SequenceEqual(g.Order()))
            .Select(g => $"{g.Key.Item1}-{g.Key.Item2}")
            .ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(missing, Is.Empty, $"start of run {run}: confirmed, never acked, but not recovered");
            Assert.That(ids.GroupBy(id => id).Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, $"start of run {run}: recovered twice");
            Assert.That(found.Where(r => r.Fields[2] != "ok").Select(r => r.Id), Is.Empty, $"start of run {run}: corrupt messages");
            Assert.That(ids.Where(id => int.Parse(id.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture) >= run), Is.Empty, $"start of run {run}: messages from the future");
            Assert.That(outOfOrder, Is.Empty, $"start of run {run}: a publisher's messages out of order");
        }

        return set;
    }

    private async Task<List<Record>> RunChildAsync(string run, TimeSpan? killAfter)
    {
        var helper = Path.Combine(AppContext.BaseDirectory, "MessageQueue.CrashHelper.dll");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["MQ_CRASH_STORE"] = _store;
        start.ArgumentList.Add(helper);
        start.ArgumentList.Add(Database);
        start.ArgumentList.Add(killAfter is null ? "0" : run);
        if (killAfter is null)
        {
            start.ArgumentList.Add("final");
        }

        using var child = Process.Start(start) ?? throw new InvalidOperationException("the crash helper did not start");
        var errors = child.StandardError.ReadToEndAsync();
        var records = new List<Record>();
        var ready = false;
        Task? kill = null;
        while (await child.StandardOutput.ReadLineAsync() is { } line)
        {
            if (!line.EndsWith(" ;", StringComparison.Ordinal))
            {
                continue; // cut short by the kill
            }

            var record = Record.Parse(line);
            records.Add(record);
            if (record.Kind == "READY" && killAfter is { } after && !ready)
            {
                ready = true;
                kill = Task.Delay(after).ContinueWith(_ => child.Kill(entireProcessTree: true), TaskScheduler.Default);
            }
        }

        await child.WaitForExitAsync();
        Assert.That(records.Where(r => r.Kind == "LOG").Select(r => string.Join(' ', r.Fields)), Is.Empty, $"run {run}: the broker logged warnings or errors");
        if (kill is not null)
        {
            await kill;
        }

        var stderr = await errors;
        if (killAfter is null)
        {
            Assert.That(child.ExitCode, Is.Zero, $"the final run failed: {stderr}");
        }
        else
        {
            Assert.That(ready, Is.True, $"run {run} did not start: {stderr}");
            Assert.That(stderr, Is.Empty, $"run {run} failed before it was killed");
        }

        return records;
    }

    private string IntegrityCheck()
    {
        if (_store == "litedb")
        {
            // Every page LiteDB reaches from its collections and the index, read back through the store.
            using var store = new MessageQueue.LiteDb.LiteDbMessageStore(Database);
            var contents = store.Open();
            var rows = contents.Queues.Keys.Sum(q => store.ReadQueue(q, withEnvelopes: true).Count(r => r.Length > 0 && r.Envelope.Length == r.Length));
            return rows == contents.Queues.Values.Sum() ? "ok" : $"{rows} readable rows of {contents.Queues.Values.Sum()}";
        }


        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Database, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA integrity_check;";
        return (string)command.ExecuteScalar()!;
    }

    private sealed record Record(string Kind, string Id, string[] Fields)
    {
        public static Record Parse(string line)
        {
            var parts = line[..^2].Split(' ');
            return new Record(parts[0], parts.Length > 1 ? parts[1] : "", parts[1..]);
        }
    }
}
