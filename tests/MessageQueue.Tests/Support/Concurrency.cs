namespace MessageQueue.Tests.Support;

public static class Concurrency
{
    /// <summary>Raises <paramref name="target"/> to <paramref name="value"/> when it is larger, atomically.</summary>
    public static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
