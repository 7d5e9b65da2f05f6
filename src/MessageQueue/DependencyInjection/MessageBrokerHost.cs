using MessageQueue.Consuming;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.DependencyInjection;

/// <summary>
/// Runs a registered broker with the host. <see cref="StartAsync"/> builds it (checking its topology and handlers,
/// recovering its durable queues), so a broken configuration stops the host at start with every problem listed, then
/// starts its handlers. <see cref="StopAsync"/> stops every subscription of the broker (its handlers and those made
/// with <see cref="IMessageBroker.Subscribe{T}"/>): no new deliveries; running handlers finish until the host's
/// shutdown timeout (its token) or the broker's, whichever is first, then their tokens are cancelled; every unsettled
/// delivery returns to its queue. The broker itself stays open, so hosted services that stop later can still publish;
/// the container disposes it (writing what is pending to the store) after the host has stopped.
/// </summary>
internal sealed class MessageBrokerHost(Func<IMessageBroker> resolve, MessageQueueRegistration registration) : IHostedService
{
    private readonly List<ISubscription> _subscriptions = [];
    private IMessageBroker? _broker;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var broker = resolve();
        _broker = broker;
        var scopes = registration.Services.GetRequiredService<IServiceScopeFactory>();
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

    public Task StopAsync(CancellationToken cancellationToken) => _broker switch
    {
        null => Task.CompletedTask,
        MessageBroker engine => engine.StopSubscriptionsAsync(cancellationToken),
        _ => Task.WhenAll(_subscriptions.Select(s => s is IStopsGracefully graceful ? graceful.StopAsync(cancellationToken) : s.DisposeAsync().AsTask())),
    };
}
