namespace MessageQueue.Tests.Support;

/// <summary>Waits on the broker's own change signals; never sleeps or polls.</summary>
public static class BrokerWaits
{
    /// <summary>A safety net for a broken test, not a way to wait: every wait completes on a signal.</summary>
    private static readonly TimeSpan Safety = TimeSpan.FromSeconds(20);

    /// <summary>Completes when <paramref name="predicate"/> holds for the queue's info.</summary>
    public static async Task<QueueInfo> WaitForQueueAsync(this IMessageBroker broker, string queue, Func<QueueInfo, bool> predicate)
    {
        var q = broker.Engine().Context.Topology.GetQueue(queue);
        var done = new TaskCompletionSource<QueueInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check()
        {
            var info = q.GetInfo();
            if (predicate(info))
            {
                done.TrySetResult(info);
            }
        }

        q.Changed += Check;
        try
        {
            Check();
            return await done.Task.WaitAsync(Safety);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Queue never reached the expected state; last: {q.GetInfo()}");
        }
        finally
        {
            q.Changed -= Check;
        }
    }

    /// <summary>Waits until nothing in the queue is ready or unacked.</summary>
    public static Task<QueueInfo> WaitForDrainedAsync(this IMessageBroker broker, string queue) =>
        broker.WaitForQueueAsync(queue, i => i.Ready == 0 && i.Unacked == 0 && i.Delayed == 0);

    /// <summary>The in-process engine behind a broker that <see cref="MessageBrokerBuilder.Build"/> made (for tests that
    /// look inside it).</summary>
    internal static MessageBroker Engine(this IMessageBroker broker) => (MessageBroker)broker;

    public static Task<T> WithSafety<T>(this Task<T> task) => task.WaitAsync(Safety);

    public static Task WithSafety(this Task task) => task.WaitAsync(Safety);
}
