using MessageQueue.Consuming;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.DependencyInjection;

/// <summary>
/// Runs a registered broker with the host. <see cref="StartAsync"/> builds it (checking its topology and handlers,
/// recovering its durable queues), so a broken configuration stops the host at start with every problem listed, then
/// starts its handlers. <see cref="StopAsync"/> stops new deliveries, lets running handlers finish until the host's
/// shutdown timeout (its token) or the broker's, returns every unsettled delivery to its queue, then disposes the
/// broker (a durable queue's acks are on disk when it returns).
/// </summary>
internal sealed class MessageBrokerHost(Func<IMessageBroker> resolve, MessageQueueRegistration registration, IServiceScopeFactory scopes) : IHostedService
{
    private readonly List<ISubscription> _subscriptions = [];
    private IMessageBroker? _broker;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var broker = resolve();
        _broker = broker;
        try
        {
            foreach (var handler in registration.Handlers)
            {
                _subscriptions.Add(handler.Start(broker, scopes));
            }
        }
        catch
        {
            broker.Dispose();
            throw;
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_broker is not { } broker)
        {
            return;
        }

        await Task.WhenAll(_subscriptions.Select(s => s is IStopsGracefully graceful
            ? graceful.StopAsync(cancellationToken)
            : s.DisposeAsync().AsTask())).ConfigureAwait(false);
        await broker.DisposeAsync().ConfigureAwait(false);
    }
}
