// QuickStart: orders go through a topic exchange to two queues. Billing handles everything; shipping fails
// some orders: a few recover on retry, the rest are dead-lettered with the exception in their headers.
using MessageQueue;

const int orderCount = 40;

await using var broker = new MessageBrokerBuilder()
    .AddExchange("orders", ExchangeType.Topic)
    .AddQueue("billing")
    .AddQueue("shipping.dead")
    .AddQueue("shipping", q => q.DeadLetterQueue = "shipping.dead")
    .Bind("orders", "billing", "order.*")
    .Bind("orders", "shipping", "order.created")
    .Build();

var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
var outcomes = 0;
void Settled()
{
    // billing sees every order once; shipping ends each order acked or dead-lettered
    if (Interlocked.Increment(ref outcomes) == 2 * orderCount)
    {
        finished.TrySetResult();
    }
}

await using var billing = broker.Subscribe<OrderCreated>("billing", (delivery, _) =>
{
    Settled();
    return ValueTask.CompletedTask;
}, o => o.Concurrency = 2);

await using var shipping = broker.Subscribe<OrderCreated>("shipping", (delivery, _) =>
{
    var order = delivery.Message;
    if (order.Id % 10 == 0)
    {
        throw new InvalidOperationException($"Order {order.Id} has no shipping address.");      // always fails
    }

    if (order.Id % 7 == 0 && delivery.DeliveryCount == 1)
    {
        throw new TimeoutException($"Carrier API timed out for order {order.Id}.");              // fails once
    }

    Settled();
    return ValueTask.CompletedTask;
}, o =>
{
    o.Concurrency = 4;
    o.Retry = RetryPolicy.Intervals(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20));
});

var deadLetters = new List<string>();
await using var dead = broker.Subscribe<OrderCreated>("shipping.dead", (delivery, _) =>
{
    lock (deadLetters)
    {
        deadLetters.Add($"  order {delivery.Message.Id}: {delivery.Properties.Deaths[0].Reason} after {delivery.Properties.Headers["x-first-death-queue"]} " +
            $"-> {delivery.Properties.Headers["x-exception-message"]}");
    }

    Settled();
    return ValueTask.CompletedTask;
});

const int scheduled = 5;
for (var id = 1; id <= orderCount; id++)
{
    // The last few orders are scheduled: they wait in the queues, delayed, and become ready 200 ms later.
    var options = id > orderCount - scheduled ? new PublishOptions { Delay = TimeSpan.FromMilliseconds(200) } : null;
    await broker.PublishAsync("orders", "order.created", new OrderCreated(id, 10m * id), options);
}

var waiting = broker.Management.GetQueueInfo("billing");
Console.WriteLine($"Just after publishing: billing has {waiting.Delayed} delayed (scheduled) orders.");

await finished.Task.WaitAsync(TimeSpan.FromSeconds(30));
await broker.DisposeAsync(); // lets the last handlers finish and be acked

Console.WriteLine($"Published {orderCount} orders to exchange 'orders' ({scheduled} of them with a 200 ms delay).");
Console.WriteLine();
Console.WriteLine($"{"queue",-15}{"published",10}{"delivered",10}{"acked",8}{"redelivered",13}{"dead-lettered",15}");
foreach (var name in new[] { "billing", "shipping", "shipping.dead" })
{
    var q = broker.Management.GetQueueInfo(name);
    Console.WriteLine($"{q.Name,-15}{q.Published,10}{q.Delivered,10}{q.Acked,8}{q.Redelivered,13}{q.DeadLettered,15}");
}

Console.WriteLine();
Console.WriteLine("Dead letters:");
deadLetters.Sort(StringComparer.Ordinal);
deadLetters.ForEach(Console.WriteLine);

/// <summary>The message of this sample.</summary>
internal sealed record OrderCreated(int Id, decimal Total);
