using System.Diagnostics;
using MessageQueue.Queues;

namespace MessageQueue.Diagnostics;

/// <summary>
/// Spans on the <c>MessageQueue</c> activity source, following OpenTelemetry's messaging conventions: a producer span
/// per publish or send (<c>publish {exchange}</c>, <c>send {queue}</c>) whose W3C trace context travels in the message's
/// headers (<c>traceparent</c>, <c>tracestate</c>), and a consumer span per delivery code takes (<c>process {queue}</c>
/// for a subscription's handler, <c>receive {queue}</c> for a pull consumer) whose parent is that context. The headers
/// stay with the message through retries, dead-lettering (a dead letter keeps its headers) and a durable queue's
/// restart (they are stored), so one trace spans them all. Nothing is started or injected while nobody listens
/// (<see cref="ActivitySource.HasListeners"/>).
/// </summary>
internal static class BrokerTracing
{
    internal const string TraceParent = "traceparent";
    internal const string TraceState = "tracestate";

    internal static readonly ActivitySource Source = new(MessageQueueTelemetry.ActivitySourceName, typeof(BrokerTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Starts the producer span of a publish (null when nobody listens or the span is not sampled).</summary>
    internal static Activity? StartPublish(string exchange, string routingKey, bool send)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var destination = send ? routingKey : exchange;
        var activity = Source.StartActivity(send ? $"send {destination}" : $"publish {(exchange.Length == 0 ? "(default)" : exchange)}", ActivityKind.Producer);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(BrokerMetrics.SystemTag, MessageQueueTelemetry.MessagingSystem);
            activity.SetTag(BrokerMetrics.DestinationTag, destination);
            activity.SetTag("messaging.operation.type", "send");
            activity.SetTag(BrokerMetrics.OperationTag, send ? "send" : "publish");
            activity.SetTag("messaging.rabbitmq.destination.routing_key", routingKey);
        }

        return activity;
    }

    /// <summary>The options to publish with so that <paramref name="activity"/>'s context travels in the message's headers: a copy of
    /// <paramref name="options"/> (the caller's object is never changed) with <c>traceparent</c> (and <c>tracestate</c>)
    /// set, unless the publisher set a <c>traceparent</c> of its own.</summary>
    internal static PublishOptions WithContext(PublishOptions? options, Activity activity)
    {
        if (options?.Headers is { } existing && existing.ContainsKey(TraceParent))
        {
            return options;
        }

        var headers = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (options?.Headers is { } given)
        {
            foreach (var (key, value) in given)
            {
                headers[key] = value;
            }
        }

        headers[TraceParent] = activity.Id;
        if (activity.TraceStateString is { Length: > 0 } state)
        {
            headers[TraceState] = state;
        }

        return options is null
            ? new PublishOptions { Headers = headers }
            : new PublishOptions
            {
                MessageId = options.MessageId,
                CorrelationId = options.CorrelationId,
                ReplyTo = options.ReplyTo,
                Headers = headers,
                Priority = options.Priority,
                ContentType = options.ContentType,
                Mandatory = options.Mandatory,
                TimeToLive = options.TimeToLive,
                Delay = options.Delay,
                DeliverAt = options.DeliverAt,
                Persistent = options.Persistent,
            };
    }

    /// <summary>A publish or send while someone listens to traces: <paramref name="publish"/> runs with the options
    /// that carry the context. Fails as the untraced call does (what throws from the call itself still does). The
    /// producer span is open until the publish completes, but it is never left as the caller's current activity; its
    /// context (or, when the sampler dropped it, the caller's) travels in the message's headers.</summary>
    internal static ValueTask<PublishResult> Traced(string exchange, string routingKey, bool send, PublishOptions? options, Func<PublishOptions?, ValueTask<PublishResult>> publish)
    {
        var caller = Activity.Current;
        var activity = StartPublish(exchange, routingKey, send);
        if ((activity ?? caller) is { } context)
        {
            options = WithContext(options, context);
        }

        ValueTask<PublishResult> pending;
        try
        {
            pending = publish(options);
        }
        catch (Exception ex) when (activity is not null)
        {
            Fail(activity, ex);
            activity.Dispose();
            Activity.Current = caller;
            throw;
        }

        if (activity is null)
        {
            return pending;
        }

        Activity.Current = caller;
        if (pending.IsCompletedSuccessfully)
        {
            var result = pending.Result;
            Published(activity, result);
            activity.Dispose(); // the caller's activity stays current (it is the span's parent)
            return new ValueTask<PublishResult>(result);
        }

        return EndAsync(activity, pending);

        static async ValueTask<PublishResult> EndAsync(Activity activity, ValueTask<PublishResult> pending)
        {
            try
            {
                var result = await pending.ConfigureAwait(false);
                Published(activity, result);
                return result;
            }
            catch (Exception ex)
            {
                Fail(activity, ex);
                throw;
            }
            finally
            {
                activity.Dispose();
            }
        }
    }

    /// <summary>Records an accepted publish on its producer span: the message id and how many queues took it.</summary>
    internal static void Published(Activity activity, PublishResult result)
    {
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("messaging.message.id", result.MessageId);
            activity.SetTag("messagequeue.routed_queues", result.RoutedQueues);
        }
    }

    /// <summary>Starts the consumer span of a delivery code takes, child of the context its message carries (null when
    /// nobody listens or the span is not sampled).</summary>
    internal static Activity? StartConsume(string queue, QueueEntry entry, int deliveryCount, bool process) =>
        Source.HasListeners() ? StartConsume(queue, entry.GetProperties(), entry.RoutingKey, deliveryCount, process) : null;

    /// <summary>Starts the consumer span of a delivery of a message with <paramref name="properties"/> (a transport's).</summary>
    internal static Activity? StartConsume(string queue, MessageProperties properties, string routingKey, int deliveryCount, bool process)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        ActivityContext parent = default;
        if (properties.Headers.TryGetValue(TraceParent, out var traceParent) && traceParent is string id)
        {
            var state = properties.Headers.TryGetValue(TraceState, out var s) ? s as string : null;
            _ = ActivityContext.TryParse(id, state, isRemote: true, out parent);
        }

        var activity = Source.StartActivity(process ? $"process {queue}" : $"receive {queue}", ActivityKind.Consumer, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(BrokerMetrics.SystemTag, MessageQueueTelemetry.MessagingSystem);
            activity.SetTag(BrokerMetrics.DestinationTag, queue);
            activity.SetTag("messaging.operation.type", process ? "process" : "receive");
            activity.SetTag(BrokerMetrics.OperationTag, process ? "process" : "receive");
            activity.SetTag("messaging.message.id", properties.MessageId);
            activity.SetTag("messaging.rabbitmq.destination.routing_key", routingKey);
            activity.SetTag("messagequeue.delivery_count", deliveryCount);
            if (properties.CorrelationId is { } correlation)
            {
                activity.SetTag("messaging.message.conversation_id", correlation);
            }
        }

        return activity;
    }

    /// <summary>Marks a span failed, recording the exception as an event (OpenTelemetry's <c>exception</c> event).</summary>
    internal static void Fail(Activity activity, Exception failure)
    {
        activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        activity.SetTag(BrokerMetrics.ErrorTypeTag, failure.GetType().FullName);
        activity.AddException(failure);
    }
}
