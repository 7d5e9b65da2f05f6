using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MessageQueue.Health;

/// <summary>
/// The broker's health: <c>Unhealthy</c> when it was stopped, its message store fails (the last write failed), or a
/// transport's connection is down (<see cref="ITransportHealth"/>: RabbitMQ's);
/// <c>Degraded</c> when a queue passes <see cref="MessageQueueHealthCheckOptions.QueueFullShare"/> of its length limit
/// or its head message is older than <see cref="MessageQueueHealthCheckOptions.MaxHeadMessageAge"/>; else
/// <c>Healthy</c>. The data lists each queue's ready, unacked and consumer counts.
/// </summary>
internal sealed class MessageQueueHealthCheck(Func<IMessageBroker> broker, MessageQueueHealthCheckOptions options, TimeProvider time) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var current = broker();
        if (current is ITransportHealth transport)
        {
            return Task.FromResult(transport.Problem is { } problem
                ? new HealthCheckResult(context.Registration.FailureStatus, problem)
                : HealthCheckResult.Healthy(transport.Description));
        }

        var engine = current as MessageBroker;
        if (engine is null)
        {
            return Task.FromResult(HealthCheckResult.Healthy("A broker other than the in-process one is not checked here."));
        }

        if (engine.IsDisposed)
        {
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, "The message broker was stopped."));
        }

        if (engine.Context.Durable?.LastWriteFailure is { } failure)
        {
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, $"The message store fails: {failure.Message}", failure));
        }

        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var problems = new List<string>();
        var now = time.GetUtcNow();
        var queues = engine.Context.Topology.Queues.ToList();
        var deadLetterQueues = queues.Select(q => q.Options.DeadLetterQueue).OfType<string>().ToHashSet(StringComparer.Ordinal);
        foreach (var queue in queues)
        {
            if (options.Queues is { } only && !only.Contains(queue.Name))
            {
                continue;
            }

            var info = queue.GetInfo();
            data[queue.Name] = $"ready={info.Ready} unacked={info.Unacked} consumers={info.Consumers}";
            if (queue.Options.MaxLength is { } max and > 0 && info.Ready >= options.QueueFullShare * max)
            {
                problems.Add($"queue '{queue.Name}' holds {info.Ready} of its MaxLength {max}");
            }

            if (options.MaxHeadMessageAge is { } maxAge && info.HeadMessageTimestamp is { } head && now - head > maxAge && !deadLetterQueues.Contains(queue.Name))
            {
                problems.Add($"the head message of queue '{queue.Name}' is {(now - head).TotalSeconds:0} s old (more than {maxAge.TotalSeconds:0} s)");
            }
        }

        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy($"{data.Count} queue(s) checked.", data)
            : HealthCheckResult.Degraded(string.Join("; ", problems) + ".", data: data));
    }
}
