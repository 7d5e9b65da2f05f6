using System.Reflection;
using MessageQueue.RabbitMq;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 19, point 7: the pooled publish against a scripted channel (no server), to order events the server
/// cannot be made to order: a channel that ends while a pooled publish is still being written.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class PooledPublishUnitTests
{
    /// <summary>A channel's end fails what is outstanding on it while a write may still be under way; the retry on
    /// another channel shares the publish's properties (its number header), so it must not begin before that write
    /// ends. Before the fix it began at once, writing the properties while the first write read them.</summary>
    [Test]
    public async Task APooledPublishFailedDuringItsWrite_IsSentAgainOnlyAfterTheWriteEnds_ThenConfirmed()
    {
        var connection = new ScriptedConnection();
        var publisher = new RabbitMqPublisher(connection.Proxy, new JsonMessageSerializer());
        ValueTask<PublishResult> send = default;
        for (var i = 0; i < 100 && !publisher.TryPublishDefault("", "q", [1, 2, 3], "T", DateTime.UtcNow.Ticks, send: true, out send); i++)
        {
            await connection.Opened.Reader.ReadAsync(); // a slot's channel opens in the background; then it starts at once
        }

        var first = await connection.Writes.Reader.ReadAsync();
        Assert.That(first.Written.Task.IsCompleted, Is.False, "its write is under way");
        first.Channel.Shutdown(new ShutdownEventArgs(ShutdownInitiator.Application, 200, "closed by the test"));

        // Nothing may write it again while the first write reads its properties. (A bounded wait for something that
        // must not happen: before the fix the retry's write came within milliseconds.)
        var early = connection.Writes.Reader.ReadAsync().AsTask();
        Assert.That(await Task.WhenAny(early, Task.Delay(500)), Is.Not.SameAs(early), "sent again while its first write was under way");
        Assert.That(send.IsCompleted, Is.False);

        first.Written.SetResult();
        var again = await early;
        Assert.That(again.Channel, Is.Not.SameAs(first.Channel));
        Assert.That(again.Properties, Is.SameAs(first.Properties), "the same properties, now free");
        again.Written.SetResult();
        again.Channel.Ack(1);
        var result = await send;
        Assert.That(result.RoutedQueues, Is.EqualTo(1));
        await publisher.DisposeAsync();
    }

    private sealed record Write(ScriptedChannel Channel, BasicProperties Properties, TaskCompletionSource Written);

    private sealed class ScriptedConnection
    {
        public ScriptedConnection() => Proxy = Scripted.Create<IConnection>((method, args) => method.Name switch
        {
            "get_IsOpen" => true,
            "CreateChannelAsync" => Task.FromResult(Open()),
            _ => Scripted.Default(method),
        });

        public IConnection Proxy { get; }

        public System.Threading.Channels.Channel<bool> Opened { get; } = System.Threading.Channels.Channel.CreateUnbounded<bool>();

        public System.Threading.Channels.Channel<Write> Writes { get; } = System.Threading.Channels.Channel.CreateUnbounded<Write>();

        private IChannel Open()
        {
            var channel = new ScriptedChannel(this);
            Opened.Writer.TryWrite(true);
            return channel.Proxy;
        }
    }

    private sealed class ScriptedChannel
    {
        private readonly Dictionary<string, Delegate> _handlers = [];
        private bool _open = true;

        public ScriptedChannel(ScriptedConnection connection) => Proxy = Scripted.Create<IChannel>((method, args) =>
        {
            switch (method.Name)
            {
                case var add when add.StartsWith("add_", StringComparison.Ordinal):
                    _handlers[add[4..]] = (Delegate)args![0]!;
                    return null;
                case "get_IsOpen":
                    return _open;
                case "BasicPublishAsync":
                    var written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    connection.Writes.Writer.TryWrite(new Write(this, (BasicProperties)args![3]!, written));
                    return new ValueTask(written.Task);
                default:
                    return Scripted.Default(method);
            }
        });

        public IChannel Proxy { get; }

        public void Shutdown(ShutdownEventArgs reason)
        {
            _open = false;
            ((AsyncEventHandler<ShutdownEventArgs>)_handlers["ChannelShutdownAsync"])(Proxy, reason).GetAwaiter().GetResult();
        }

        public void Ack(ulong number) =>
            ((AsyncEventHandler<BasicAckEventArgs>)_handlers["BasicAcksAsync"])(Proxy, new BasicAckEventArgs(number, multiple: false)).GetAwaiter().GetResult();
    }

    /// <summary>Interfaces implemented by a function of the method called and its arguments.</summary>
    private static class Scripted
    {
        public static T Create<T>(Func<MethodInfo, object?[]?, object?> script)
            where T : class
        {
            var proxy = DispatchProxy.Create<T, ScriptedProxy>();
            ((ScriptedProxy)(object)proxy).Script = script;
            return proxy;
        }

        /// <summary>What a method not scripted returns: a completed task, or the default value.</summary>
        public static object? Default(MethodInfo method) =>
            method.ReturnType == typeof(Task) ? Task.CompletedTask
            : method.ReturnType == typeof(void) ? null
            : method.ReturnType.IsValueType ? Activator.CreateInstance(method.ReturnType)
            : null;
    }
}

/// <summary>The proxy behind <c>PooledPublishUnitTests.Scripted</c>.</summary>
public class ScriptedProxy : DispatchProxy
{
    internal Func<MethodInfo, object?[]?, object?> Script { get; set; } = null!;

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => Script(targetMethod!, args);
}
