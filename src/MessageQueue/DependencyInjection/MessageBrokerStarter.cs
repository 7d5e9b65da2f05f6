using Microsoft.Extensions.Hosting;

namespace MessageQueue.DependencyInjection;

/// <summary>Builds a registered broker when the host starts (checking its topology and recovering its durable
/// queues), so a broken configuration stops the host at start. The container disposes the broker.</summary>
internal sealed class MessageBrokerStarter(Func<IMessageBroker> resolve) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _ = resolve();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
