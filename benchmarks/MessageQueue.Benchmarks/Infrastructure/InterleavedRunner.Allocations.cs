using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace MessageQueue.Benchmarks.Infrastructure;

public static partial class InterleavedRunner
{
    /// <summary>Counts the objects every thread of this process allocates while <paramref name="className"/>'s rows
    /// run (their iteration setup is not counted), by type, per message: <c>--allocations Class [calls]</c>. Each row
    /// is warmed up with one uncounted call, then called <paramref name="calls"/> times under the runtime's
    /// <c>GCSampledObjectAllocationHigh</c> events, whose <c>ObjectCountForTypeSample</c> counts every object of a type
    /// since that type's last event, so their sum is the number of objects (the objects of a type counted after its
    /// last event are left out: a few per type, from tens of thousands). The listener's own objects (event arguments)
    /// are counted apart and not per message. BenchmarkDotNet's bytes per operation stay the measure of size.
    /// <paramref name="category"/>, when given, counts only the rows of that category: <c>--allocations Class calls
    /// Category</c>. Short windows lose more (a row under about a second can lose a third of a type's objects), so
    /// give a fast row more calls.</summary>
    public static async Task<string> CountAllocationsAsync(string className, int calls, string? category = null)
    {
        var type = typeof(InterleavedRunner).Assembly.GetTypes().SingleOrDefault(t => t.Name == className)
            ?? throw new ArgumentException($"No benchmark class named '{className}'.", nameof(className));
        var rows = Rows(type, category);
        if (rows.Count == 0)
        {
            throw new ArgumentException($"'{className}' has no row to count{(category is null ? "" : $" in category '{category}'")}.", nameof(category));
        }

        var instance = Activator.CreateInstance(type)!;
        foreach (var row in rows)
        {
            await CallAsync(instance, type, typeof(GlobalSetupAttribute), row.Method).ConfigureAwait(false);
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {className}: objects allocated per message ({calls} calls per row, all threads), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        using var listener = new AllocationListener();
        foreach (var group in rows.GroupBy(r => r.Category))
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"### {(group.Key.Length == 0 ? "rows" : group.Key)}");
            foreach (var row in group)
            {
                var scale = type.GetProperty("Scale");
                scale?.SetValue(instance, 1);
                await CallAsync(instance, type, typeof(IterationSetupAttribute), row.Method).ConfigureAwait(false);
                await AwaitResult(row.Method.Invoke(instance, null)).ConfigureAwait(false); // warm: JIT, pools, channels

                // One long window (calls x the row's messages, when the class can scale its rows), or one window per
                // call: what is counted after a type's last event is lost, so long windows lose a smaller share.
                var counts = new Dictionary<string, long>(StringComparer.Ordinal);
                scale?.SetValue(instance, calls);
                for (var i = 0; i < (scale is null ? calls : 1); i++)
                {
                    await CallAsync(instance, type, typeof(IterationSetupAttribute), row.Method).ConfigureAwait(false);
                    listener.Start();
                    await AwaitResult(row.Method.Invoke(instance, null)).ConfigureAwait(false);
                    foreach (var (name, count) in listener.Stop())
                    {
                        counts[name] = counts.GetValueOrDefault(name) + count;
                    }
                }

                scale?.SetValue(instance, 1);
                var messages = (double)calls * row.Operations;
                var own = counts.Where(c => !AllocationListener.IsListeners(c.Key)).ToList();
                text.AppendLine();
                text.AppendLine(CultureInfo.InvariantCulture, $"{row.Name}: {own.Sum(c => c.Value) / messages:F2} objects per message (the listener's own: {counts.Where(c => AllocationListener.IsListeners(c.Key)).Sum(c => c.Value) / messages:F2})");
                text.AppendLine();
                foreach (var (name, count) in own.OrderByDescending(c => c.Value).Where(c => c.Value / messages >= 0.01))
                {
                    text.AppendLine(CultureInfo.InvariantCulture, $"- {count / messages:F2} {name}");
                }
            }
        }

        foreach (var row in rows)
        {
            await CallAsync(instance, type, typeof(GlobalCleanupAttribute), row.Method).ConfigureAwait(false);
        }

        return text.ToString();
    }

    /// <summary>Sums the runtime's sampled allocation events by type while started.</summary>
    private sealed class AllocationListener : EventListener
    {
        private const EventKeywords SampledAllocationHigh = (EventKeywords)0x200000;
        private ConcurrentDictionary<nint, long> _counts = new();
        private DateTime _from = DateTime.MaxValue, _to = DateTime.MaxValue;
        private long _last;

        public static bool IsListeners(string typeName) =>
            typeName.StartsWith("System.Diagnostics.Tracing.", StringComparison.Ordinal)
            || typeName.StartsWith("System.Collections.ObjectModel.ReadOnlyCollection", StringComparison.Ordinal)
            || typeName.StartsWith(typeof(AllocationListener).FullName!, StringComparison.Ordinal)
            || typeName is "System.IntPtr" or "System.UInt16" or "System.UInt32" or "System.UInt64" or "System.Object[]" or "System.Func<IntPtr, Int64, Int64>";

        public void Start()
        {
            _counts = new();
            _to = DateTime.MaxValue;
            _from = DateTime.UtcNow;
        }

        public Dictionary<string, long> Stop()
        {
            _to = DateTime.UtcNow;
            var patience = Stopwatch.StartNew();
            while (Interlocked.Read(ref _last) <= _to.Ticks && patience.Elapsed < TimeSpan.FromSeconds(5))
            {
                Thread.Sleep(20); // the events arrive on the listener's thread, late: wait for one from after the end
                _ = new object[8];
            }

            _from = DateTime.MaxValue;
            return _counts.GroupBy(c => Name(c.Key)).ToDictionary(g => g.Key, g => g.Sum(c => c.Value), StringComparer.Ordinal);
        }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Verbose, SampledAllocationHigh);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            var at = eventData.TimeStamp.ToUniversalTime();

            Interlocked.Exchange(ref _last, at.Ticks);
            if (at < _from || at > _to || eventData.PayloadNames is not { } names || eventData.Payload is not { } payload)
            {
                return;
            }

            var typeId = names.IndexOf("TypeID");
            var count = names.IndexOf("ObjectCountForTypeSample");
            if (typeId >= 0 && count >= 0)
            {
                var id = payload[typeId] switch
                {
                    nint pointer => pointer,
                    ulong number => (nint)number,
                    var other => (nint)Convert.ToInt64(other, CultureInfo.InvariantCulture),
                };
                var objects = Convert.ToInt64(payload[count], CultureInfo.InvariantCulture);
                _counts.AddOrUpdate(id, objects, (_, c) => c + objects);
            }
        }

        private static string Name(nint typeId)
        {
            try
            {
                return Type.GetTypeFromHandle(RuntimeTypeHandle.FromIntPtr(typeId)) is { } type ? Readable(type) : $"type {typeId:x}";
            }
#pragma warning disable CA1031 // a type that cannot be named is reported by its handle
            catch (Exception)
#pragma warning restore CA1031
            {
                return $"type {typeId:x}";
            }
        }

        // A type nested in a generic one is generic without a backtick in its name (a Debug build's state machine of
        // an async method of a generic class: <ReceiveSlowAsync>d__24, of RabbitMqConsumer<Order>).
        private static string Readable(Type type) => type.IsGenericType
            ? $"{(type.IsNested ? Readable(type.DeclaringType!) + "+" : type.Namespace + ".")}{(type.Name.IndexOf('`', StringComparison.Ordinal) is var tick and >= 0 ? type.Name[..tick] : type.Name)}<{string.Join(", ", type.GetGenericArguments().Select(a => a.IsGenericType ? Readable(a) : a.Name))}>"
            : type.FullName ?? type.Name;
    }
}
