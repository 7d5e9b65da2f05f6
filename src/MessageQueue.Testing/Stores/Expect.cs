using System.Collections;

namespace MessageQueue.Testing.Stores;

/// <summary>The conformance suite's assertions: framework-neutral, each failure a
/// <see cref="MessageQueueAssertionException"/> that says what was expected and what the store did.</summary>
internal static class Expect
{
    public static void Equal<T>(T actual, T expected, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(actual, expected))
        {
            throw new MessageQueueAssertionException($"{what}: expected {Show(expected)}, the store gave {Show(actual)}.");
        }
    }

    public static void Sequence<T>(IEnumerable<T> actual, IEnumerable<T> expected, string what)
    {
        var a = actual.ToList();
        var e = expected.ToList();
        if (!a.SequenceEqual(e))
        {
            throw new MessageQueueAssertionException($"{what}: expected [{Show(e)}], the store gave [{Show(a)}].");
        }
    }

    /// <summary>The same items in any order.</summary>
    public static void Equivalent<T>(IEnumerable<T> actual, IEnumerable<T> expected, string what)
    {
        var a = actual.Select(x => Show(x)).Order(StringComparer.Ordinal).ToList();
        var e = expected.Select(x => Show(x)).Order(StringComparer.Ordinal).ToList();
        if (!a.SequenceEqual(e))
        {
            throw new MessageQueueAssertionException($"{what}: expected (in any order) [{string.Join(", ", e)}], the store gave [{string.Join(", ", a)}].");
        }
    }

    public static void True(bool condition, string what)
    {
        if (!condition)
        {
            throw new MessageQueueAssertionException(what);
        }
    }

    public static TException Throws<TException>(Action action, string what)
        where TException : Exception
    {
        try
        {
            action();
        }
        catch (TException ex)
        {
            return ex;
        }
        catch (Exception ex)
        {
            throw new MessageQueueAssertionException($"{what}: expected a {typeof(TException).Name}, the store threw {ex.GetType().Name}: {ex.Message}", ex);
        }

        throw new MessageQueueAssertionException($"{what}: expected a {typeof(TException).Name}, the store threw nothing.");
    }

    private static string Show(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        byte[] bytes => Convert.ToHexString(bytes),
        IEnumerable items => string.Join(", ", items.Cast<object?>().Select(Show)),
        _ => value.ToString() ?? "",
    };
}
