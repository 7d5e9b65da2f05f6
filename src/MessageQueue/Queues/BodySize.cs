using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace MessageQueue.Queues;

/// <summary>
/// Measures in-memory bodies for <see cref="QueueOptions.MaxLengthBytes"/>: bytes by their length, strings by
/// their UTF-8 length, anything else by its System.Text.Json serialization, measured once per body object
/// (fanout copies share the body, so they share the measurement).
/// </summary>
internal static class BodySize
{
    private static readonly ConditionalWeakTable<object, StrongBox<long>> Measured = [];

    internal static long Of(object body) => body switch
    {
        byte[] bytes => bytes.Length,
        string text => Encoding.UTF8.GetByteCount(text),
        ReadOnlyMemory<byte> memory => memory.Length,
        Memory<byte> memory => memory.Length,
        ArraySegment<byte> segment => segment.Count,
        _ => Measured.GetValue(body, static b => new StrongBox<long>(Serialize(b))).Value,
    };

    private static long Serialize(object body)
    {
        try
        {
            return JsonSerializer.SerializeToUtf8Bytes(body, body.GetType()).LongLength;
        }
        catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException)
        {
            throw new MessageQueueException(
                $"A '{body.GetType().FullName}' was published to a queue with MaxLengthBytes, which measures a body by its JSON form, and it cannot be serialized: {ex.Message}",
                ex);
        }
    }
}
