using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MessageQueue.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using WebApi;

namespace MessageQueue.WebApi.Tests;

/// <summary>
/// The sample order service, driven over HTTP end to end: orders billed by a DI handler, an order that cannot be
/// filled dead-lettered with its reason, re-driven after restocking, a full queue answering 429, queue info and health
/// as JSON, and a restart that recovers what was queued.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class OrderServiceTests
{
    private string _database = "";

    [SetUp]
    public void NewDatabase() => _database = Path.Combine(Path.GetTempPath(), $"mq-webapi-{Guid.NewGuid():N}.db");

    [TearDown]
    public void DeleteDatabase()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _database, _database + "-wal", _database + "-shm", _database + ".lock", _database + ".owner" })
        {
            File.Delete(file);
        }
    }

    private WebApplicationFactory<Program> Service(int maxQueued = 10_000) => new WebApplicationFactory<Program>().WithWebHostBuilder(b => b
        .UseSetting("Orders:Database", _database)
        .UseSetting("Orders:MaxQueued", maxQueued.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private static IMessageBroker Broker(WebApplicationFactory<Program> service) => service.Services.GetRequiredService<IMessageBroker>();

    [Test]
    public async Task AnOrderThatCannotBeFilled_IsDeadLetteredWithItsReason_AndBilledOnceRedrivenAfterRestocking()
    {
        await using var service = Service();
        using var http = service.CreateClient();

        var placed = await http.PostAsJsonAsync("/orders", new OrderRequest("lamp", 2));
        Assert.That(placed.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        var order = (await placed.Content.ReadFromJsonAsync<OrderPlaced>())!;
        await Broker(service).WaitForQueueAsync("billing.dead", i => i.Ready == 1);

        var dead = await http.GetFromJsonAsync<JsonElement>("/dead-letters");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(dead.GetArrayLength(), Is.EqualTo(1));
            Assert.That(dead[0].GetProperty("messageId").GetString(), Is.EqualTo(order.OrderId));
            Assert.That(dead[0].GetProperty("reason").GetString(), Is.EqualTo("rejected"));
            Assert.That(dead[0].GetProperty("exception").GetString(), Is.EqualTo("Out of stock: 2 x 'lamp' wanted, 0 available."));
        }

        (await http.PutAsync("/stock/lamp?quantity=5", null)).EnsureSuccessStatusCode();
        var redrive = await (await http.PostAsync("/dead-letters/redrive", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.That(redrive.GetProperty("redriven").GetInt32(), Is.EqualTo(1));
        await Broker(service).WaitForQueueAsync("billing", i => i.Acked == 1);

        var billed = await http.GetFromJsonAsync<OrderPlaced[]>("/orders/billed");
        var queues = await http.GetFromJsonAsync<JsonElement>("/queues");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(billed, Is.EqualTo(new[] { order }));
            Assert.That(queues.EnumerateArray().Select(q => (q.GetProperty("name").GetString(), q.GetProperty("ready").GetInt32())),
                Is.EquivalentTo(new[] { ("billing", 0), ("billing.dead", 0) }));
            Assert.That(await http.GetStringAsync("/health"), Is.EqualTo("Healthy"));
        }
    }

    [Test]
    public async Task WhatWasQueued_SurvivesARestart()
    {
        string orderId;
        await using (var service = Service())
        {
            using var http = service.CreateClient();
            var placed = await http.PostAsJsonAsync("/orders", new OrderRequest("chair", 1));
            orderId = (await placed.Content.ReadFromJsonAsync<OrderPlaced>())!.OrderId;
            await Broker(service).WaitForQueueAsync("billing.dead", i => i.Ready == 1);
        }

        await using var restarted = Service();
        using var again = restarted.CreateClient();
        var dead = await again.GetFromJsonAsync<JsonElement>("/dead-letters");
        Assert.That(dead.EnumerateArray().Select(d => d.GetProperty("messageId").GetString()), Is.EqualTo(new[] { orderId }));

        (await again.PutAsync("/stock/chair?quantity=1", null)).EnsureSuccessStatusCode();
        await again.PostAsync("/dead-letters/redrive", null);
        await Broker(restarted).WaitForQueueAsync("billing", i => i.Acked == 1);
        Assert.That((await again.GetFromJsonAsync<OrderPlaced[]>("/orders/billed"))!.Select(o => o.OrderId), Is.EqualTo(new[] { orderId }));
    }

    [Test]
    public async Task AFullQueue_Answers429_AndAnInvalidOrder400()
    {
        await using var service = Service(maxQueued: 0);
        using var http = service.CreateClient();

        var full = await http.PostAsJsonAsync("/orders", new OrderRequest("desk", 1));
        var invalid = await http.PostAsJsonAsync("/orders", new OrderRequest("", 0));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(full.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
            Assert.That(await full.Content.ReadAsStringAsync(), Does.Contain("MaxLength = 0"));
            Assert.That(invalid.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }
    }
}
