namespace MessageQueue.Diagnostics;

/// <summary>
/// The names MessageQueue reports under, for wiring: its <see cref="System.Diagnostics.Metrics.Meter"/> and its
/// <see cref="System.Diagnostics.ActivitySource"/> are both named <c>MessageQueue</c>. With OpenTelemetry:
/// <c>services.AddOpenTelemetry().WithMetrics(m =&gt; m.AddMeter(MessageQueueTelemetry.MeterName)).WithTracing(t =&gt; t.AddSource(MessageQueueTelemetry.ActivitySourceName))</c>;
/// with <c>dotnet-counters</c>: <c>dotnet-counters monitor --counters MessageQueue -p PID</c>. The instruments,
/// spans and their attributes are listed in the README's observability section. Nothing is measured or traced while
/// nobody listens.
/// </summary>
public static class MessageQueueTelemetry
{
    /// <summary>The meter's name: <c>MessageQueue</c>.</summary>
    public const string MeterName = "MessageQueue";

    /// <summary>The activity source's name: <c>MessageQueue</c>.</summary>
    public const string ActivitySourceName = "MessageQueue";

    /// <summary>The value of the <c>messaging.system</c> attribute on every span and measurement: <c>messagequeue</c>.</summary>
    public const string MessagingSystem = "messagequeue";
}
