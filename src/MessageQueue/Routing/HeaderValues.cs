using System.Collections;

namespace MessageQueue.Routing;

/// <summary>
/// Compares header values as RabbitMQ's headers exchange does: values of the same type class compare by
/// value (every integer type is one class, <see cref="float"/> and <see cref="double"/> another), and values
/// of different classes never match (a string never equals a number).
/// </summary>
internal static class HeaderValues
{
    internal static bool ValuesEqual(object? a, object? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        if (TryInteger(a, out var ia))
        {
            return TryInteger(b, out var ib) && ia == ib;
        }

        if (a is float or double)
        {
            return b is float or double && Convert.ToDouble(a, System.Globalization.CultureInfo.InvariantCulture) == Convert.ToDouble(b, System.Globalization.CultureInfo.InvariantCulture);
        }

        return (a, b) switch
        {
            (string sa, string sb) => string.Equals(sa, sb, StringComparison.Ordinal),
            (byte[] ba, byte[] bb) => ba.AsSpan().SequenceEqual(bb),
            (IList la, IList lb) => ListsEqual(la, lb),
            (string or byte[] or IList, _) => false,
            _ => a.GetType() == b.GetType() && a.Equals(b),
        };
    }

    internal static bool ArgumentsEqual(IReadOnlyDictionary<string, object?>? a, IReadOnlyDictionary<string, object?>? b)
    {
        var countA = a?.Count ?? 0;
        var countB = b?.Count ?? 0;
        if (countA != countB)
        {
            return false;
        }

        if (countA == 0)
        {
            return true;
        }

        foreach (var (key, value) in a!)
        {
            if (!b!.TryGetValue(key, out var other) || !ValuesEqual(value, other))
            {
                return false;
            }
        }

        return true;
    }

    private static bool ListsEqual(IList a, IList b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Count; i++)
        {
            if (!ValuesEqual(a[i], b[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryInteger(object value, out Int128 result)
    {
        switch (value)
        {
            case sbyte v: result = v; return true;
            case byte v: result = v; return true;
            case short v: result = v; return true;
            case ushort v: result = v; return true;
            case int v: result = v; return true;
            case uint v: result = v; return true;
            case long v: result = v; return true;
            case ulong v: result = v; return true;
            default: result = default; return false;
        }
    }
}
