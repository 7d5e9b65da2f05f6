using System.Collections.Concurrent;
using MessageQueue;

namespace WebApi;

/// <summary>What a client posts.</summary>
public sealed record OrderRequest(string Sku, int Quantity);

/// <summary>The message: an order placed.</summary>
[MessageType("orders.placed")]
public sealed record OrderPlaced(string OrderId, string Sku, int Quantity);

/// <summary>A permanent failure: retrying does not help until someone restocks.</summary>
public sealed class OutOfStockException(string sku, int wanted, int available)
    : InvalidOperationException($"Out of stock: {wanted} x '{sku}' wanted, {available} available.");

/// <summary>Stock per SKU (in memory, for the sample; a real service would call an inventory system, which can
/// time out: tests replace it to show retries).</summary>
public class Stock
{
    private readonly ConcurrentDictionary<string, int> _stock = new(StringComparer.Ordinal);

    public void Set(string sku, int quantity) => _stock[sku] = quantity;

    /// <summary>Takes <paramref name="quantity"/> of <paramref name="sku"/>, or throws <see cref="OutOfStockException"/>.</summary>
    public virtual void Take(string sku, int quantity)
    {
        while (true)
        {
            var available = _stock.GetValueOrDefault(sku);
            if (available < quantity)
            {
                throw new OutOfStockException(sku, quantity, available);
            }

            if (_stock.TryUpdate(sku, available - quantity, available))
            {
                return;
            }
        }
    }
}

/// <summary>The orders billed so far (in memory, for the sample).</summary>
public sealed class Billed
{
    private readonly ConcurrentQueue<OrderPlaced> _orders = new();

    public IReadOnlyList<OrderPlaced> All => [.. _orders];

    public void Add(OrderPlaced order) => _orders.Enqueue(order);
}

/// <summary>A scoped service: one per message, disposed after it.</summary>
public sealed partial class OrderBilling(Stock stock, Billed billed, ILogger<OrderBilling> logger) : IDisposable
{
    public void Bill(OrderPlaced order)
    {
        stock.Take(order.Sku, order.Quantity);
        billed.Add(order);
        LogBilled(logger, order.OrderId);
    }

    public void Dispose()
    {
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Billed order {OrderId}")]
    private static partial void LogBilled(ILogger logger, string orderId);
}

/// <summary>Bills each placed order. Out of stock dead-letters at once (see the retry policy in Program.cs).</summary>
public sealed class BillingHandler(OrderBilling billing) : IMessageHandler<OrderPlaced>
{
    public ValueTask HandleAsync(Delivery<OrderPlaced> delivery, CancellationToken cancellationToken)
    {
        billing.Bill(delivery.Message);
        return ValueTask.CompletedTask;
    }
}

/// <summary>A dead letter as GET /dead-letters shows it.</summary>
public sealed record DeadLetterView(string MessageId, object Body, string? Reason, string? Exception, long Count)
{
    public static DeadLetterView Of(MessageQueue.PeekedMessage message)
    {
        var death = message.Properties.Deaths.Count > 0 ? message.Properties.Deaths[0] : null;
        return new DeadLetterView(
            message.Properties.MessageId,
            message.Body,
            death?.Reason,
            message.Properties.Headers.TryGetValue("x-exception-message", out var text) ? text as string : null,
            death?.Count ?? 0);
    }
}
