// The sample's observability as an operator wires it: OpenTelemetry with the MessageQueue meter and activity source
// (here with the in-memory exporter instead of the console), and ASP.NET Core's own source. One POST /orders makes one
// trace: the request, the publish, the queue and the handler; the meter reports the publish and the acked delivery.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using MessageQueue;
using MessageQueue.Diagnostics;
using MessageQueue.Testing;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace WebApi.Tests;

[TestFixture]
[CancelAfter(60_000)]
public sealed class TelemetryTests
{
    [Test]
    public async Task AnOrder_MakesOneTrace_FromThePublishThroughTheQueueToTheHandler_AndIsCounted()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        var stock = new Stock();
        stock.Set("lamp", 5);
        await using var service = new WebApplicationFactory<Program>().WithWebHostBuilder(b => b
            .UseSetting("Orders:Database", Path.Combine(Path.GetTempPath(), $"never-created-{Guid.NewGuid():N}.db"))
            .ConfigureTestServices(services =>
            {
                services.AddSingleton(stock);
                services.AddMessageQueueTestHarness();
                services.AddOpenTelemetry()
                    .WithMetrics(m => m.AddMeter(MessageQueueTelemetry.MeterName).AddInMemoryExporter(metrics))
                    .WithTracing(t => t.AddSource(MessageQueueTelemetry.ActivitySourceName, "Microsoft.AspNetCore").AddInMemoryExporter(spans));
            }));
        using var http = service.CreateClient();
        var harness = service.Services.GetRequiredService<MessageQueueTestHarness>();

        var response = await http.PostAsJsonAsync("/orders", new OrderRequest("lamp", 1));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        await harness.WaitForIdleAsync();
        service.Services.GetRequiredService<TracerProvider>().ForceFlush();
        service.Services.GetRequiredService<MeterProvider>().ForceFlush();

        var request = spans.Single(s => s.Source.Name == "Microsoft.AspNetCore");
        var publish = spans.Single(s => s.DisplayName == "publish orders");
        var process = spans.Single(s => s.DisplayName == "process billing");
        var sent = metrics.Single(m => m.Name == "messaging.client.sent.messages");
        var acked = metrics.Single(m => m.Name == "messagequeue.queue.acked");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(new[] { publish.TraceId, process.TraceId }, Is.All.EqualTo(request.TraceId), "one trace id: request, publish, handler");
            Assert.That(publish.ParentSpanId, Is.EqualTo(request.SpanId));
            Assert.That(process.ParentSpanId, Is.EqualTo(publish.SpanId));
            Assert.That((publish.Kind, process.Kind), Is.EqualTo((ActivityKind.Producer, ActivityKind.Consumer)));
            Assert.That(process.GetTagItem("messaging.destination.name"), Is.EqualTo("billing"));
            Assert.That(Sum(sent, "orders"), Is.EqualTo(1));
            Assert.That(Sum(acked, "billing"), Is.EqualTo(1));
        }
    }

    private static long Sum(Metric metric, string destination)
    {
        long sum = 0;
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            foreach (var tag in point.Tags)
            {
                if (tag.Key == "messaging.destination.name" && (string?)tag.Value == destination)
                {
                    sum += point.GetSumLong();
                }
            }
        }

        return sum;
    }
}
