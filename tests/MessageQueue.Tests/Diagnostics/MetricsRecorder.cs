using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MessageQueue.Tests.Diagnostics;

/// <summary>Listens to one meter's instruments (one broker's, so other brokers in the process do not count) and
/// records every measurement: those recorded as things happen, and those of observable instruments when
/// <see cref="Collect"/> asks for them.</summary>
public sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();

    public MetricsRecorder(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, value, tags, _) => Add(i, value, tags));
        _listener.SetMeasurementEventCallback<int>((i, value, tags, _) => Add(i, value, tags));
        _listener.SetMeasurementEventCallback<double>((i, value, tags, _) => Add(i, value, tags));
        _listener.Start();
    }

    public ConcurrentQueue<Measured> Measurements { get; } = new();

    /// <summary>Reads the observable instruments now and returns what they reported (by instrument name).</summary>
    public IReadOnlyList<Measured> Collect()
    {
        var before = Measurements.Count;
        _listener.RecordObservableInstruments();
        return [.. Measurements.Skip(before)];
    }

    /// <summary>The measurements of <paramref name="name"/> recorded as things happened (not collected).</summary>
    public IReadOnlyList<Measured> Of(string name) => [.. Measurements.Where(m => m.Name == name)];

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value;
        }

        Measurements.Enqueue(new Measured(instrument.Name, instrument.Unit, value, copy));
    }
}

/// <summary>One measurement: the instrument, its unit, the value and the tags.</summary>
public sealed record Measured(string Name, string? Unit, double Value, IReadOnlyDictionary<string, object?> Tags)
{
    public string? Tag(string key) => Tags.TryGetValue(key, out var v) ? v?.ToString() : null;
}

/// <summary>Picks measurements out of a collection.</summary>
public static class MeasuredExtensions
{
    /// <summary>The value <paramref name="name"/> reported for <paramref name="destination"/> (with extra tags, if
    /// given), or null when it reported none.</summary>
    public static double? Value(this IEnumerable<Measured> measurements, string name, string destination, params (string Key, string Value)[] tags) =>
        measurements.Where(m => m.Name == name && m.Tag("messaging.destination.name") == destination && tags.All(t => m.Tag(t.Key) == t.Value))
            .Select(m => (double?)m.Value).SingleOrDefault();
}
