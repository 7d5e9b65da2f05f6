// How a user of MessageQueue tests the WebApi sample: the handler alone with TestDelivery (no broker), and the whole
// service with the test harness (fake time, exact idle, recorded dead letters), the database left alone.
using System.Net;
using System.Net.Http.Json;
using MessageQueue;
using MessageQueue.Testing;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace WebApi.Tests;

[TestFixture]
[CancelAfter(60_000)]
public sealed class BillingTests
{
    /// <summary>An inventory that times out the first <paramref name="failures"/> times (a transient error).</summary>
    private sealed class SlowInventory(int failures) : Stock
    {
        private int _failures = failures;

        public override void Take(string sku, int quantity)
        {
            if (Interlocked.Decrement(ref _failures) >= 0)
            {
                throw new TimeoutException("The inventory service timed out.");
            }

            base.Take(sku, quantity);
        }
    }

    private static WebApplicationFactory<Program> Service(Stock stock) => new WebApplicationFactory<Program>().WithWebHostBuilder(b => b
        .UseSetting("Orders:Database", Path.Combine(Path.GetTempPath(), $"never-created-{Guid.NewGuid():N}.db"))
        .ConfigureTestServices(services =>
        {
            services.AddSingleton(stock);
            services.AddMessageQueueTestHarness(); // fake clock, durable queues in memory, everything recorded
        }));

    [Test]
    public async Task Handler_BillsAnOrderInStock_AndThrowsOutOfStockOtherwise()
    {
        var stock = new Stock();
        stock.Set("lamp", 1);
        var billed = new Billed();
        var handler = new BillingHandler(new OrderBilling(stock, billed, NullLogger<OrderBilling>.Instance));
        var first = TestDelivery.Create(new OrderPlaced("o-1", "lamp", 1));
        var second = TestDelivery.Create(new OrderPlaced("o-2", "lamp", 1));

        await handler.HandleAsync(first.Delivery, CancellationToken.None);
        await Assert.ThrowsAsync<OutOfStockException>(async () => await handler.HandleAsync(second.Delivery, CancellationToken.None));

        Assert.That(billed.All.Select(o => o.OrderId), Is.EqualTo(new[] { "o-1" }));
    }

    [Test]
    public async Task ATimeout_IsRetriedWithBackOff_OnTheFakeClock_ThenTheOrderIsBilled()
    {
        var stock = new SlowInventory(failures: 2);
        stock.Set("lamp", 5);
        await using var service = Service(stock);
        using var http = service.CreateClient();
        var harness = service.Services.GetRequiredService<MessageQueueTestHarness>();

        var response = await http.PostAsJsonAsync("/orders", new OrderRequest("lamp", 1));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromMilliseconds(100)); // the first retry's wait
        await harness.WaitForIdleAsync();
        harness.Time.Advance(TimeSpan.FromMilliseconds(200)); // the second's
        await harness.WaitForIdleAsync();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(harness.Published.Only<OrderPlaced>(1).Single().RoutingKey, Is.EqualTo("order.placed"));
            Assert.That(harness.Nacked.Exactly<OrderPlaced>(2).Select(n => n.Delay), Is.EqualTo(new[] { TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200) }));
            Assert.That(harness.Acked.Exactly<OrderPlaced>(1).Single().DeliveryCount, Is.EqualTo(3));
            Assert.That(harness.DeadLettered.All, Is.Empty);
        }
    }

    [Test]
    public async Task OutOfStock_IsDeadLetteredAtOnce_WithTheReason()
    {
        await using var service = Service(new Stock());
        using var http = service.CreateClient();
        var harness = service.Services.GetRequiredService<MessageQueueTestHarness>();

        await http.PostAsJsonAsync("/orders", new OrderRequest("desk", 2));
        var dead = await harness.DeadLettered.AnyAsync<OrderPlaced>();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(dead.Exception, Is.TypeOf<OutOfStockException>(), "not retried: the retry policy dead-letters OutOfStockException");
            Assert.That(harness.Delivered.Exactly<OrderPlaced>(1).Single().DeliveryCount, Is.EqualTo(1));
        }
    }
}
