using System.Collections.Concurrent;
using MessageQueue.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MessageQueue.Tests.Hosting;

/// <summary>
/// Stopping the host while handlers are busy: running handlers finish (or, once the host gives up, are cancelled),
/// the rest returns to the queue, nothing is lost or handled twice; durable queues hand the rest to the next start.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class HostShutdownTests : TempDatabaseFixture
{
    public sealed class SlowHandler(HandlerGate gate) : IMessageHandler<Order>
    {
        public ValueTask HandleAsync(Delivery<Order> delivery, CancellationToken cancellationToken) =>
            gate.PassAsync(delivery.Message.Id, cancellationToken);
    }

    private IHost Host(HandlerGate gate, bool durable)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton(gate).AddMessageQueue(mq =>
        {
            mq.AddQueue("work", q => q.Durable = durable).AddHandler<Order, SlowHandler>("work", o => o.Concurrency = 2);
            if (durable)
            {
                mq.UseSqlite(Database);
            }
        });
        return builder.Build();
    }

    private static async Task<IMessageBroker> StartWithBusyHandlersAsync(IHost host, HandlerGate gate)
    {
        await host.StartAsync().WithSafety();
        var broker = host.Services.GetRequiredService<IMessageBroker>();
        for (var i = 1; i <= 5; i++)
        {
            await broker.SendAsync("work", new Order(i));
        }

        await gate.Started.WaitAsync().WithSafety();
        await gate.Started.WaitAsync().WithSafety(); // both workers are busy
        return broker;
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task StopAsync_LetsRunningHandlersFinish_ReturnsTheRest_NothingLostOrHandledTwice(bool durable)
    {
        var gate = new HandlerGate();
        using (var host = Host(gate, durable))
        {
            var broker = await StartWithBusyHandlersAsync(host, gate);
            var stopping = host.StopAsync();
            await broker.WaitForQueueAsync("work", i => i.Consumers == 0); // no new deliveries from now on
            gate.Open.SetResult();
            await stopping.WithSafety();

            var info = broker.Management.GetQueueInfo("work");
            using (Assert.EnterMultipleScope())
            {
                Assert.That(gate.Finished, Has.Count.EqualTo(2), "the two running handlers finished");
                Assert.That((info.Acked, info.Unacked, info.Ready), Is.EqualTo((2L, 0, 3)), "their messages acked, the rest back in the queue");
                Assert.That(gate.Cancelled, Is.Empty);
            }
        }

        if (!durable)
        {
            return;
        }

        using var restarted = Host(gate, durable);
        var again = await StartWithoutWaitingAsync(restarted);
        await again.WaitForQueueAsync("work", i => i.Acked == 3);
        Assert.That(gate.Finished.Order(), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }), "each message handled once over both runs");
        await restarted.StopAsync().WithSafety();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task WhenTheHostGivesUp_RunningHandlersAreCancelled_AndTheirMessagesReturn(bool durable)
    {
        var gate = new HandlerGate();
        using (var host = Host(gate, durable))
        {
            var broker = await StartWithBusyHandlersAsync(host, gate);
            using var giveUp = new CancellationTokenSource();
            var stopping = host.StopAsync(giveUp.Token);
            await broker.WaitForQueueAsync("work", i => i.Consumers == 0);
            await giveUp.CancelAsync(); // the host's shutdown timeout has passed
            await stopping.WithSafety();
            await gate.WaitForCancelledAsync(2);

            var info = broker.Management.GetQueueInfo("work");
            using (Assert.EnterMultipleScope())
            {
                Assert.That(gate.Cancelled.Order(), Is.EqualTo(new[] { 1, 2 }), "the running handlers' tokens were cancelled");
                Assert.That((info.Acked, info.Unacked, info.Ready), Is.EqualTo((0L, 0, 5)), "every message is back in the queue");
            }
        }

        if (!durable)
        {
            return;
        }

        gate.Open.SetResult();
        using var restarted = Host(gate, durable);
        var again = await StartWithoutWaitingAsync(restarted);
        await again.WaitForQueueAsync("work", i => i.Acked == 5);
        Assert.That(gate.Finished.Order(), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
        await restarted.StopAsync().WithSafety();
    }

    private static async Task<IMessageBroker> StartWithoutWaitingAsync(IHost host)
    {
        await host.StartAsync().WithSafety();
        return host.Services.GetRequiredService<IMessageBroker>();
    }
}
