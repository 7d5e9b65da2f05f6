using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace MessageQueue.Tests.Support;

/// <summary>Keeps every log entry at <paramref name="minimum"/> (Warning unless given) or above, with its event id, for
/// tests that check what was logged.</summary>
public sealed class RecordingLoggerFactory(LogLevel minimum = LogLevel.Warning) : ILoggerFactory, ILogger
{
    public ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            Entries.Enqueue((logLevel, eventId, formatter(state, exception)));
        }
    }
}
