using MessageQueue.Consuming;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Consuming;

/// <summary>
/// <see cref="Delivery{T}"/> and <see cref="PublishResult"/> hold no engine type: another backend (a RabbitMQ channel,
/// a test fake) makes them through <see cref="IDeliverySource"/> and <c>IMessageIdSource</c>.
/// </summary>
[TestFixture]
public sealed class DeliverySourceTests
{
    [Test]
    public async Task Delivery_FromAnotherBackend_ReadsAndSettlesThroughItsSource()
    {
        var source = new FakeSource();
        var handle = new object();
        var delivery = new Delivery<Order>(handle, source, tag: 7, deliveryCount: 2);
        Assert.Multiple(() =>
        {
            Assert.That(delivery.Message, Is.EqualTo(new Order(1)));
            Assert.That(delivery.Queue, Is.EqualTo("fake"));
            Assert.That(delivery.Exchange, Is.EqualTo("ex"));
            Assert.That(delivery.RoutingKey, Is.EqualTo("rk"));
            Assert.That(delivery.Properties.MessageId, Is.EqualTo("m-1"));
            Assert.That(delivery.Redelivered, Is.True);
        });

        await delivery.AckAsync();
        await delivery.NackAsync(requeue: false);
        await delivery.RejectAsync("no");
        Assert.That(source.Calls, Is.EqualTo(new[] { "ack 7", "nack 7 False", "reject 7 no" }));
        Assert.That(source.Handles, Is.All.SameAs(handle));

        source.Result = SettleResult.AlreadySettled;
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await delivery.AckAsync());
        Assert.That(ex!.Message, Does.Contain("'m-1'").And.Contain("'fake'").And.Contain("already"));
    }

    [Test]
    public async Task Delivery_FromAnAutoAckSource_RefusesToBeSettled()
    {
        var delivery = new Delivery<Order>(new object(), new FakeSource { AutoAck = true }, 1, 1);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await delivery.AckAsync());
        Assert.That(ex!.Message, Does.Contain("AckMode.Auto"));
    }

    [Test]
    public void PublishResult_FromAnotherBackend_TakesItsIdFromTheSourceWhenRead()
    {
        var source = new IdSource();
        var result = new PublishResult(source, routedQueues: 1);
        Assert.That(source.Reads, Is.Zero, "no id is made until it is read");
        Assert.That(result.MessageId, Is.EqualTo("id-1"));
        Assert.That(source.Reads, Is.EqualTo(1));
    }

    private sealed class IdSource : MessageQueue.Queues.IMessageIdSource
    {
        public int Reads;

        public string MessageId
        {
            get
            {
                Reads++;
                return "id-1";
            }
        }
    }

    private sealed class FakeSource : IDeliverySource
    {
        public List<string> Calls { get; } = [];

        public List<object> Handles { get; } = [];

        public SettleResult Result { get; set; } = SettleResult.Ok;

        public string Queue => "fake";

        public bool AutoAck { get; init; }

        public TimeSpan? AckTimeout => null;

        public object Body(object message) => new Order(1);

        public MessageProperties Properties(object message) => new() { MessageId = "m-1" };

        public string Exchange(object message) => "ex";

        public string RoutingKey(object message) => "rk";

        public SettleResult Ack(object message, int tag) => Record(message, $"ack {tag}");

        public SettleResult Nack(object message, int tag, bool requeue, TimeSpan? delay) => Record(message, $"nack {tag} {requeue}");

        public SettleResult Reject(object message, int tag, string? reason, Exception? exception) => Record(message, $"reject {tag} {reason}");

        private SettleResult Record(object message, string call)
        {
            if (Result == SettleResult.Ok)
            {
                Calls.Add(call);
                Handles.Add(message);
            }

            return Result;
        }
    }
}
