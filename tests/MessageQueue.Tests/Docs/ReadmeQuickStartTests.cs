
namespace MessageQueue.Tests.Docs;

/// <summary>The README's quick start is this code: it runs here, and the README block must match it.</summary>
[TestFixture]
[CancelAfter(20_000)]
public sealed class ReadmeQuickStartTests
{
    public sealed record OrderCreated(int Id);

    [Test]
    public async Task QuickStart_Runs()
    {
        var billed = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ct = CancellationToken.None;

        // quickstart:start
        await using var broker = new MessageBrokerBuilder()
            .AddExchange("orders", ExchangeType.Topic)
            .AddQueue("billing.dead")
            .AddQueue("billing", q => { q.MaxDeliveryCount = 5; q.DeadLetterQueue = "billing.dead"; })
            .Bind("orders", "billing", "order.*")
            .Build();

        // push: the handler's return acks; an exception retries, then dead-letters
        await using var subscription = broker.Subscribe<OrderCreated>("billing", (delivery, ct) =>
        {
            billed.TrySetResult(delivery.Message.Id);
            return ValueTask.CompletedTask;
        }, o => o.Retry = RetryPolicy.Exponential(3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5)));

        PublishResult result = await broker.PublishAsync("orders", "order.created", new OrderCreated(42));

        // pull, with manual ack
        await broker.Management.DeclareQueueAsync("audit");
        await broker.SendAsync("audit", new OrderCreated(43));
        await using IConsumer<OrderCreated> consumer = broker.Consume<OrderCreated>("audit");
        Delivery<OrderCreated> delivery = await consumer.ReceiveAsync(ct);
        await delivery.AckAsync();
        // quickstart:end

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(result.RoutedQueues, Is.EqualTo(1));
            Assert.That(await billed.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo(42));
            Assert.That(delivery.Message.Id, Is.EqualTo(43));
        });
    }

    [Test]
    public void Readme_QuickStartBlock_MatchesThisTest()
    {
        var fromReadme = ReadmeText.Normalize(ReadmeText.Between(ReadmeText.Readme, "<!-- quickstart:start -->", "<!-- quickstart:end -->"));
        var source = ReadmeText.TestSource("ReadmeQuickStartTests.cs");
        var fromTest = ReadmeText.Normalize(ReadmeText.Between(source, "// quickstart" + ":start", "// quickstart" + ":end"));
        Assert.That(fromReadme, Is.EqualTo(fromTest), "README.md's quick start must be the code this test runs");
    }
}
