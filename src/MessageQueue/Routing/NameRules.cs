namespace MessageQueue.Routing;

/// <summary>The rules for exchange and queue names and routing keys (AMQP short strings).</summary>
internal static class NameRules
{
    internal const int MaxLength = 255;

    /// <summary>Returns what is wrong with a name, or <see langword="null"/> when it is valid.</summary>
    internal static string? Check(string? name, string kind)
    {
        if (name is null)
        {
            return $"A {kind} name is null; give every {kind} a name.";
        }

        if (name.Length == 0)
        {
            return $"A {kind} name is empty; the empty name is reserved for the default exchange.";
        }

        if (name.Length > MaxLength)
        {
            return $"The {kind} name '{name[..40]}...' has {name.Length} characters; at most {MaxLength} are allowed.";
        }

        foreach (var c in name)
        {
            if (char.IsControl(c))
            {
                return $"The {kind} name '{Printable(name)}' contains a control character (U+{(int)c:X4}); names must be printable.";
            }
        }

        return null;
    }

    /// <summary>Throws <see cref="TopologyException"/> when the name is invalid.</summary>
    internal static void ThrowIfInvalid(string? name, string kind)
    {
        if (Check(name, kind) is { } problem)
        {
            throw new TopologyException(problem);
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> when a routing key is too long.</summary>
    internal static void ThrowIfInvalidRoutingKey(string routingKey, string paramName)
    {
        ArgumentNullException.ThrowIfNull(routingKey, paramName);
        if (routingKey.Length > MaxLength)
        {
            throw new ArgumentException($"The routing key has {routingKey.Length} characters; at most {MaxLength} are allowed.", paramName);
        }
    }

    private static string Printable(string name) =>
        string.Concat(name.Select(c => char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString()));
}
