using MessageQueue.Testing;
using MessageQueue.Tests.Support;

namespace MessageQueue.Tests.Testing;

/// <summary>Fakes for unit tests: a delivery that records its settlement, a producer that records its publishes.</summary>
[TestFixture]
public sealed class FakeTests
{
    /// <summary>A handler as a user writes it: acks good orders, rejects bad ones with a reason.</summary>
    private static async ValueTask Handle(Delivery<Order> delivery)
    {
        if (delivery.Message.Id < 0)
        {
            await delivery.RejectAsync($"order {delivery.Message.Id} is invalid");
            return;
        }

        await delivery.AckAsync();
    }

    [Test]
    public async Task TestDelivery_RecordsHowTheHandlerSettledIt()
    {
        var good = TestDelivery.Create(new Order(1));
        var bad = TestDelivery.Create(new Order(-1), deliveryCount: 2, queue: "billing");
        await Handle(good.Delivery);
        await Handle(bad.Delivery);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(good.Settlement, Is.EqualTo(Settlement.Acked));
            Assert.That((bad.Settlement, bad.Reason), Is.EqualTo((Settlement.Rejected, "order -1 is invalid")));
            Assert.That((bad.Delivery.Queue, bad.Delivery.DeliveryCount, bad.Delivery.Redelivered), Is.EqualTo(("billing", 2, true)));
            Assert.That(good.Delivery.Message, Is.EqualTo(new Order(1)));
            Assert.That(good.Delivery.Properties.MessageId, Is.Not.Empty);
        }
    }

    [Test]
    public async Task TestDelivery_SettledTwice_ThrowsAsTheBrokerWould_AndRecordsNackDetails()
    {
        var delivery = TestDelivery.Create(new Order(1), new MessageProperties { MessageId = "m-1" });
        await delivery.Delivery.NackAsync(requeue: true, delay: TimeSpan.FromSeconds(5));

        var again = await Assert.ThrowsAsync<InvalidOperationException>(async () => await delivery.Delivery.AckAsync());

        using (Assert.EnterMultipleScope())
        {
            Assert.That((delivery.Settlement, delivery.Delay), Is.EqualTo((Settlement.Requeued, (TimeSpan?)TimeSpan.FromSeconds(5))));
            Assert.That(again!.Message, Does.Contain("message 'm-1'").And.Contains("already acknowledged, nacked or rejected"));
            Assert.That(delivery.ExtraSettles, Is.EqualTo(1));
        }
    }

    [Test]
    public async Task RecordingProducer_RecordsPublishesInOrder_AndCanBeToldToFail()
    {
        var producer = new RecordingProducer();
        await producer.PublishAsync("orders", "order.created", new Order(1));
        await producer.SendAsync("audit", new Order(2), new PublishOptions { MessageId = "a-2" });
        var full = new QueueFullException("Queue 'orders' is full.");
        producer.FailWith(p => p.Exchange == "orders" ? full : null);

        var thrown = await Assert.ThrowsAsync<QueueFullException>(async () => await producer.PublishAsync("orders", "order.created", new Order(3)));
        var results = await producer.PublishBatchAsync("", "audit", new[] { new Order(4), new Order(5) });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(thrown, Is.SameAs(full));
            Assert.That(producer.Published.Select(p => (p.Exchange, p.RoutingKey)), Is.EqualTo(new[] { ("orders", "order.created"), ("", "audit"), ("", "audit"), ("", "audit") }));
            Assert.That(producer.Published[1].MessageId, Is.EqualTo("a-2"));
            Assert.That(producer.Messages<Order>(o => o.Id > 1).Select(o => o.Id), Is.EqualTo(new[] { 2, 4, 5 }));
            Assert.That(results.Select(r => r.RoutedQueues), Is.EqualTo(new[] { 1, 1 }));
        }
    }

    [Test]
    public async Task RecordingProducer_ATransactionRecordsOnlyWhenCommitted_AllOrNothing()
    {
        var producer = new RecordingProducer();
        await using (var discarded = producer.BeginTransaction())
        {
            await discarded.SendAsync("q", new Order(1));
        }

        producer.FailWith(p => ((Order)p.Message).Id == 3 ? new UnroutableMessageException("orders", "x") : null);
        await using var failing = producer.BeginTransaction();
        await failing.SendAsync("q", new Order(2));
        await failing.SendAsync("q", new Order(3));
        await Assert.ThrowsAsync<UnroutableMessageException>(async () => await failing.CommitAsync());

        Assert.That(producer.Published, Is.Empty, "a disposed transaction and a failed commit record nothing");
    }
}
