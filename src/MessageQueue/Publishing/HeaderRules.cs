using System.Collections;

namespace MessageQueue.Publishing;

/// <summary>Which header values may travel with a message, and which header names belong to the broker.</summary>
internal static class HeaderRules
{
    internal const string FirstDeathQueue = "x-first-death-queue";
    internal const string FirstDeathReason = "x-first-death-reason";
    internal const string FirstDeathExchange = "x-first-death-exchange";
    internal const string LastDeathQueue = "x-last-death-queue";
    internal const string LastDeathReason = "x-last-death-reason";
    internal const string LastDeathExchange = "x-last-death-exchange";
    internal const string ExceptionType = "x-exception-type";
    internal const string ExceptionMessage = "x-exception-message";
    internal const string ExceptionStack = "x-exception-stack";
    internal const string RejectionReason = "x-rejection-reason";

    /// <summary>Whether a publisher may not set this header (the broker writes it).</summary>
    internal static bool IsReserved(string name) =>
        name.StartsWith("x-death", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("x-first-death-", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("x-last-death-", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("x-exception-", StringComparison.OrdinalIgnoreCase)
        || name.Equals(RejectionReason, StringComparison.OrdinalIgnoreCase);

    /// <summary>Validates a publisher's headers and copies them without the broker's own.</summary>
    /// <exception cref="ArgumentException">A key is empty or a value has a type that cannot travel.</exception>
    internal static IReadOnlyDictionary<string, object?> CopyForPublish(IReadOnlyDictionary<string, object?> headers, string paramName)
    {
        var copy = new Dictionary<string, object?>(headers.Count, StringComparer.Ordinal);
        foreach (var (key, value) in headers)
        {
            if (string.IsNullOrEmpty(key))
            {
                throw new ArgumentException("A header name is null or empty; every header needs a name.", paramName);
            }

            if (!IsAllowedValue(value, allowList: true))
            {
                throw new ArgumentException(
                    $"Header '{key}' has a value of type '{value!.GetType().FullName}', which cannot travel with a message. " +
                    "Use a string, bool, integer, floating point, decimal, Guid, DateTimeOffset, byte[], null, or a list of these.",
                    paramName);
            }

            if (!IsReserved(key))
            {
                copy[key] = value;
            }
        }

        return copy;
    }

    private static bool IsAllowedValue(object? value, bool allowList) => value switch
    {
        null or string or bool or byte[] => true,
        sbyte or byte or short or ushort or int or uint or long or ulong => true,
        float or double or decimal or Guid or DateTimeOffset => true,
        IList list when allowList => AllAllowed(list),
        _ => false,
    };

    private static bool AllAllowed(IList list)
    {
        foreach (var item in list)
        {
            if (!IsAllowedValue(item, allowList: false))
            {
                return false;
            }
        }

        return true;
    }
}
