// The sample on RabbitMQ by configuration alone: Orders:RabbitMq set to the test node's URL (MQ_RABBITMQ_URL; .ci/run
// starts a private node). The same topology, endpoint and handler; a transient failure is retried in the process with
// the policy's back-off (through the transport's delay queues), an order out of stock is dead-lettered with the reason
// and the exception, the dead-letter endpoint peeks at it, and the redrive endpoint brings it back after restocking. Without a server the test is skipped, saying how to start one.
using System.Net;
using System.Net.Http.Json;
using System.Threading.Channels;
using MessageQueue;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace WebApi.Tests;

[TestFixture]
[CancelAfter(60_000)]
public sealed class RabbitMqTests
{
    /// <summary>Stock that times out the first <paramref name="failures"/> takes, and says when an order was taken.</summary>
    private sealed class WatchedStock(int failures) : Stock
    {
        private int _failures = failures;

        public Channel<string> Taken { get; } = Channel.CreateUnbounded<string>();

        public override void Take(string sku, int quantity)
        {
            if (Interlocked.Decrement(ref _failures) >= 0)
            {
                throw new TimeoutException("The inventory service timed out.");
            }

            base.Take(sku, quantity);
            Taken.Writer.TryWrite(sku);
        }
    }

    private static string RequireUrl()
    {
        var url = Environment.GetEnvironmentVariable("MQ_RABBITMQ_URL");
        if (string.IsNullOrWhiteSpace(url))
        {
            Assert.Ignore("No RabbitMQ server: MQ_RABBITMQ_URL is not set. Start a private node with 'scripts/rabbitmq-node.sh start /tmp/mq-rabbit' and set MQ_RABBITMQ_URL to the URL it prints (.ci/run does both).");
        }

        return url!;
    }

    private static WebApplicationFactory<Program> Service(string url, Stock stock) => new WebApplicationFactory<Program>().WithWebHostBuilder(b => b
        .UseSetting("Orders:RabbitMq", url)
        .UseSetting("Orders:Database", Path.Combine(Path.GetTempPath(), $"never-created-{Guid.NewGuid():N}.db"))
        .ConfigureTestServices(services => services.AddSingleton(stock)));

    [Test]
    public async Task OnRabbitMq_ARetriedOrderIsBilled_AnOrderOutOfStockIsDeadLetteredWithTheReason_AndRedrivenAfterRestocking()
    {
        var url = RequireUrl();
        var token = TestContext.CurrentContext.CancellationToken;
        var stock = new WatchedStock(failures: 2);
        await using var service = Service(url, stock);
        using var http = service.CreateClient();
        var broker = service.Services.GetRequiredService<IMessageBroker>();
        await broker.Management.PurgeAsync("billing.dead", token); // what an earlier run on this node left

        // A transient failure, twice: retried in the process (100 ms, then 200 ms), then billed.
        var lamp = $"lamp-{Guid.NewGuid():N}";
        stock.Set(lamp, 1);
        var placed = await http.PostAsJsonAsync("/orders", new OrderRequest(lamp, 1), token);
        Assert.That(placed.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(await stock.Taken.Reader.ReadAsync(token), Is.EqualTo(lamp));

        // Out of stock: dead-lettered at once (the policy), by the transport, with the reason and the exception.
        var desk = $"desk-{Guid.NewGuid():N}";
        var refused = await (await http.PostAsJsonAsync("/orders", new OrderRequest(desk, 2), token)).Content.ReadFromJsonAsync<OrderPlaced>(token);
        await using (var dead = broker.Consume<OrderPlaced>("billing.dead"))
        {
            var letter = await dead.ReceiveAsync(token);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(letter.Message, Is.EqualTo(refused));
                Assert.That(letter.Properties.MessageId, Is.EqualTo(refused!.OrderId));
                Assert.That(letter.Properties.Deaths.Select(d => (d.Queue, d.Reason)), Is.EqualTo(new[] { ("billing", DeathRecord.Rejected) }));
                Assert.That(letter.Properties.Headers["x-exception-type"], Is.EqualTo(typeof(OutOfStockException).FullName));
                Assert.That(letter.DeliveryCount, Is.EqualTo(1));
            }

            await letter.NackAsync(requeue: true); // leave it for the redrive
        }

        // Peeking on RabbitMQ takes and returns (the read message is marked redelivered): the endpoint shows it.
        var peeked = await http.GetFromJsonAsync<DeadLetterView[]>("/dead-letters", token);
        Assert.That(peeked!.Select(v => (v.MessageId, v.Reason)), Is.EqualTo(new[] { (refused.OrderId, (string?)DeathRecord.Rejected) }));

        // Restock and redrive: the order goes back to billing and is billed.
        stock.Set(desk, 2);
        var redrive = await http.PostAsync("/dead-letters/redrive", null, token);
        Assert.That(await redrive.Content.ReadFromJsonAsync<RedriveAnswer>(token), Is.EqualTo(new RedriveAnswer(1)));
        Assert.That(await stock.Taken.Reader.ReadAsync(token), Is.EqualTo(desk));
        Assert.That((await http.GetFromJsonAsync<OrderPlaced[]>("/orders/billed", token))!.Select(o => o.OrderId), Is.EqualTo(new[] { placed.Headers.Location!.ToString().Split('/')[^1], refused.OrderId }));

        var queues = await http.GetStringAsync("/queues", token);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(queues, Does.Contain("\"billing\"").And.Contain("\"billing.dead\""));
            Assert.That((await http.GetAsync("/health", token)).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
    }

    private sealed record RedriveAnswer(long Redriven);
}
