using System.Collections.Concurrent;
using System.Diagnostics;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Diagnostics;

/// <summary>Issue 17, point 2: spans on the <c>MessageQueue</c> activity source, one trace from a publish through the
/// queue, a retry and a dead letter, with OpenTelemetry's messaging attributes. (Tests run one at a time in this
/// assembly, so the process-wide listener sees only this test's broker.)</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class TracingTests
{
    private static readonly ActivitySource Test = new("MessageQueue.Tests.Tracing");

    [Test]
    public async Task OneTrace_SpansThePublish_TheHandlersRetry_AndTheDeadLetterReceived()
    {
        using var spans = new SpanRecorder("MessageQueue.Tests.Tracing");
        await using var broker = new MessageBrokerBuilder().AddQueue("dead").AddQueue("work", o => o.DeadLetterQueue = "dead").Build();
        var attempts = 0;
        await using var sub = broker.Subscribe<Order>("work", (_, _) =>
        {
            attempts++;
            throw new InvalidOperationException($"attempt {attempts} failed");
        }, o => o.Retry = RetryPolicy.Immediate(1));

        Activity root;
        using (root = Test.StartActivity("checkout")!)
        {
            await broker.SendAsync("work", new Order(7));
            Assert.That(Activity.Current, Is.SameAs(root), "the producer span does not stay current in the caller's flow");
        }

        await broker.WaitForQueueAsync("dead", i => i.Ready == 1);
        await using (var dead = broker.Consume<Order>("dead"))
        {
            var delivery = await dead.ReceiveAsync();
            Assert.That(delivery.Properties.Headers["traceparent"], Is.Not.Null, "the dead letter keeps the message's headers");
        }

        var send = spans.Single("send work");
        var processes = spans.All("process work");
        var receive = spans.Single("receive dead");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(send.Kind, Is.EqualTo(ActivityKind.Producer));
            Assert.That(send.ParentSpanId, Is.EqualTo(root.SpanId));
            Assert.That(processes, Has.Count.EqualTo(2), "the first delivery and its retry");
            Assert.That(processes.Select(p => p.Kind), Is.All.EqualTo(ActivityKind.Consumer));
            Assert.That(new[] { send, receive }.Concat(processes).Select(s => s.TraceId).Distinct(), Is.EqualTo(new[] { root.TraceId }), "one trace");
            Assert.That(processes.Select(p => p.ParentSpanId).Append(receive.ParentSpanId), Is.All.EqualTo(send.SpanId), "children of the publish, through the headers");
            Assert.That(processes.Select(p => p.Status), Is.All.EqualTo(ActivityStatusCode.Error));
            Assert.That(processes.Select(p => p.Events.Single().Name), Is.All.EqualTo("exception"));
            Assert.That(processes.Select(p => p.GetTagItem("messagequeue.delivery_count")), Is.EqualTo(new object[] { 1, 2 }));
            Assert.That(processes.Select(p => p.GetTagItem("error.type")), Is.All.EqualTo("System.InvalidOperationException"));
            Assert.That(send.GetTagItem("messaging.system"), Is.EqualTo("messagequeue"));
            Assert.That(send.GetTagItem("messaging.destination.name"), Is.EqualTo("work"));
            Assert.That(send.GetTagItem("messaging.operation.type"), Is.EqualTo("send"));
            Assert.That(send.GetTagItem("messaging.message.id"), Is.EqualTo(processes[0].GetTagItem("messaging.message.id")).And.Not.Null);
            Assert.That(receive.GetTagItem("messaging.operation.type"), Is.EqualTo("receive"));
            Assert.That(processes[0].GetTagItem("messaging.operation.type"), Is.EqualTo("process"));
        }
    }

    [Test]
    public async Task APublishThroughAnExchange_IsAProducerSpanNamedForIt_AndTheHandlersSpanIsCurrentInTheHandler()
    {
        using var spans = new SpanRecorder("MessageQueue.Tests.Tracing");
        await using var broker = new MessageBrokerBuilder().AddExchange("orders", ExchangeType.Fanout).AddQueue("a").Bind("orders", "a").Build();
        var current = new TaskCompletionSource<Activity?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sub = broker.Subscribe<Order>("a", (_, _) =>
        {
            current.TrySetResult(Activity.Current);
            return ValueTask.CompletedTask;
        });
        var headers = new Dictionary<string, object?> { ["tenant"] = "acme" };
        var options = new PublishOptions { Headers = headers, CorrelationId = "c-1" };
        var result = await broker.PublishAsync("orders", "", new Order(1), options);
        var inHandler = await current.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var publish = spans.Single("publish orders");
        var process = spans.Single("process a");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(inHandler, Is.SameAs(process), "the handler runs inside its span: its own spans are children");
            Assert.That(process.ParentSpanId, Is.EqualTo(publish.SpanId));
            Assert.That(publish.GetTagItem("messaging.message.id"), Is.EqualTo(result.MessageId));
            Assert.That(publish.GetTagItem("messagequeue.routed_queues"), Is.EqualTo(1));
            Assert.That(process.GetTagItem("messaging.message.conversation_id"), Is.EqualTo("c-1"));
            Assert.That(options.Headers, Is.SameAs(headers), "the caller's options are not changed");
            Assert.That(headers.Keys, Is.EqualTo(new[] { "tenant" }));
        }
    }

    [Test]
    public async Task AFailedPublish_EndsItsSpanAsAnError()
    {
        using var spans = new SpanRecorder("MessageQueue.Tests.Tracing");
        await using var broker = new MessageBrokerBuilder().AddExchange("ex", ExchangeType.Direct).Build();
        await Assert.ThrowsAsync<UnroutableMessageException>(async () => await broker.PublishAsync("ex", "nowhere", new Order(1), new PublishOptions { Mandatory = true }));
        var span = spans.Single("publish ex");
        Assert.That((span.Status, span.GetTagItem("error.type")), Is.EqualTo((ActivityStatusCode.Error, (object)typeof(UnroutableMessageException).FullName!)));
    }

    [Test]
    public async Task APublishTheSamplerDrops_StillCarriesTheCallersContext()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "MessageQueue" or "MessageQueue.Tests.Tracing",
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.Source.Name == "MessageQueue" ? ActivitySamplingResult.None : ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        using (var root = Test.StartActivity("caller")!)
        {
            await broker.SendAsync("q", new Order(1));
            var headers = broker.Engine().Context.Topology.GetQueue("q").Peek(1).Single().GetProperties().Headers;
            Assert.That(headers["traceparent"], Is.EqualTo(root.Id), "the caller's context, as no publish span was made");
        }
    }

    [Test]
    public async Task WithNobodyListening_NoHeaderIsAdded_AndNoPropertiesAreMadeForAPlainSend()
    {
        Assert.That(MessageQueue.Diagnostics.BrokerTracing.Source.HasListeners(), Is.False);
        await using var broker = new MessageBrokerBuilder().AddQueue("q").Build();
        await broker.SendAsync("q", new Order(1));
        var entry = broker.Engine().Context.Topology.GetQueue("q").Peek(1).Single();
        Assert.That(entry.RawProperties, Is.Null, "a send without options still makes its properties on first read only");
        Assert.That(entry.GetProperties().Headers, Is.Empty);
    }
}
