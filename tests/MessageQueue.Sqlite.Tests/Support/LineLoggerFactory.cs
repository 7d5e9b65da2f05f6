using Microsoft.Extensions.Logging;

namespace MessageQueue.Sqlite.Tests.Support;

/// <summary>Hands each warning or error the broker logs to a callback as one line (the tests keep them to fail on
/// them; the crash helper prints them for the test in the parent process).</summary>
internal sealed class LineLoggerFactory(Action<string> line) : ILoggerFactory, ILogger
{
    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            line($"{logLevel}: {formatter(state, exception)} {exception?.Message}".ReplaceLineEndings(" "));
        }
    }
}
