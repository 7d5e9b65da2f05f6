using MessageQueue.RabbitMq;
using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>Issue 18, points 3 and 5: message properties through a real RabbitMQ and back, header values with their
/// exact .NET types, and RabbitMQ's own dead-letter records as <see cref="MessageProperties.Deaths"/>.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class PropertyMappingTests
{
    [Test]
    public async Task Properties_AndHeadersOfEveryAllowedType_ComeBackExactly_ThroughTheServer()
    {
        var sent = new MessageProperties
        {
            MessageId = "m-1",
            CorrelationId = "c-1",
            ReplyTo = "replies",
            ContentType = "application/json",
            MessageType = "Shop.OrderPlaced",
            Priority = 7,
            Timestamp = new DateTimeOffset(2026, 12, 2, 10, 30, 15, TimeSpan.Zero),
            Expiration = TimeSpan.FromMinutes(5),
            Persistent = true,
            Headers = new Dictionary<string, object?>
            {
                ["string"] = "acme",
                ["bool"] = true,
                ["sbyte"] = (sbyte)-5,
                ["byte"] = (byte)200,
                ["short"] = (short)-300,
                ["ushort"] = (ushort)60_000,
                ["int"] = -70_000,
                ["uint"] = 4_000_000_000u,
                ["long"] = long.MinValue,
                ["ulong"] = ulong.MaxValue,
                ["float"] = 1.5f,
                ["double"] = Math.PI,
                ["decimal"] = 12345678901234567890.123456789m,
                ["guid"] = Guid.Parse("7f3c2a10-2b1d-4c5e-9f00-0123456789ab"),
                ["time"] = new DateTimeOffset(2026, 12, 2, 10, 30, 15, 123, TimeSpan.FromHours(2)).AddTicks(4567),
                ["bytes"] = new byte[] { 1, 2, 3 },
                ["null"] = null,
                ["list"] = new List<object?> { "a", 1, 2.5, Guid.Empty, null },
            },
        };

        var received = await RoundTripAsync(sent);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(received.MessageId, Is.EqualTo("m-1"));
            Assert.That(received.CorrelationId, Is.EqualTo("c-1"));
            Assert.That(received.ReplyTo, Is.EqualTo("replies"));
            Assert.That(received.ContentType, Is.EqualTo("application/json"));
            Assert.That(received.MessageType, Is.EqualTo("Shop.OrderPlaced"));
            Assert.That(received.Priority, Is.EqualTo(7));
            Assert.That(received.Timestamp, Is.EqualTo(sent.Timestamp), "whole seconds: AMQP's timestamp");
            Assert.That(received.Expiration, Is.EqualTo(TimeSpan.FromMinutes(5)));
            Assert.That(received.Persistent, Is.True);
            Assert.That(received.Headers.Keys, Is.EquivalentTo(sent.Headers.Keys), "the type hints are not a header of the message");
            foreach (var (name, value) in sent.Headers)
            {
                var got = received.Headers[name];
                Assert.That(got?.GetType(), Is.EqualTo(name == "list" ? typeof(List<object?>) : value?.GetType()), $"the type of '{name}'");
                Assert.That(got, Is.EqualTo(value), $"the value of '{name}'");
            }
        }
    }

    [Test]
    public async Task ATransientMessageWithoutHeaders_ComesBackTransient_WithNoHeaders()
    {
        var received = await RoundTripAsync(new MessageProperties { MessageId = "m-2", Persistent = false, Timestamp = DateTimeOffset.FromUnixTimeSeconds(1_000) });
        Assert.That((received.Persistent, received.Headers.Count, received.Expiration, received.Deaths.Count), Is.EqualTo((false, 0, (TimeSpan?)null, 0)));
    }

    [Test]
    public void WhatAmqpCannotCarry_IsRefusedNamingIt()
    {
        var longId = new string('x', 256);
        var ex = Assert.Throws<ArgumentException>(() => RabbitMqProperties.ToAmqp(new MessageProperties { MessageId = longId }));
        Assert.That(ex!.Message, Does.StartWith("MessageId is 256 bytes in UTF-8; AMQP carries at most 255"));
        var ttl = Assert.Throws<ArgumentException>(() => RabbitMqProperties.ToAmqp(new MessageProperties { MessageId = "m", Expiration = TimeSpan.FromDays(60) }));
        Assert.That(ttl!.Message, Does.Contain("longer than RabbitMQ's longest expiration"));
    }

    [Test]
    public async Task RabbitMqsDeadLetterRecord_BecomesDeaths_AsTheInMemoryBrokerShowsThem()
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        var work = $"mqt-{Guid.NewGuid():N}";
        var dead = work + "-dead";
        await channel.QueueDeclareAsync(dead, durable: false, exclusive: false, autoDelete: false);
        await channel.QueueDeclareAsync(work, durable: false, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-dead-letter-exchange"] = "", ["x-dead-letter-routing-key"] = dead });
        try
        {
            var properties = RabbitMqProperties.ToAmqp(new MessageProperties { MessageId = "d-1", Expiration = TimeSpan.FromMilliseconds(1), Headers = new Dictionary<string, object?> { ["tenant"] = "acme" } });
            await channel.BasicPublishAsync("", work, mandatory: false, properties, new byte[] { 1 });
            var got = await GetAsync(channel, dead);
            var p = RabbitMqProperties.FromAmqp(got.BasicProperties);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(p.Deaths, Has.Count.EqualTo(1));
                Assert.That((p.Deaths[0].Queue, p.Deaths[0].Reason, p.Deaths[0].Count, p.Deaths[0].Exchange), Is.EqualTo((work, DeathRecord.Expired, 1L, "")));
                Assert.That(p.Deaths[0].RoutingKeys, Is.EqualTo(new[] { work }));
                Assert.That(p.Deaths[0].OriginalExpiration, Is.EqualTo(TimeSpan.FromMilliseconds(1)));
                Assert.That(p.Deaths[0].Time, Is.EqualTo(DateTimeOffset.UtcNow).Within(TimeSpan.FromMinutes(1)));
                Assert.That(p.Headers["x-first-death-queue"], Is.EqualTo(work));
                Assert.That(p.Headers["x-first-death-reason"], Is.EqualTo("expired"));
                Assert.That(p.Headers["tenant"], Is.EqualTo("acme"));
                Assert.That(p.Headers.ContainsKey("x-death"), Is.False, "x-death is Deaths, as in memory");
            }
        }
        finally
        {
            await channel.QueueDeleteAsync(work);
            await channel.QueueDeleteAsync(dead);
        }
    }

    private static async Task<MessageProperties> RoundTripAsync(MessageProperties sent)
    {
        await using var connection = await RabbitMqNode.ConnectAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, arguments: new Dictionary<string, object?> { ["x-max-priority"] = 9 })).QueueName;
        await channel.BasicPublishAsync("", queue, mandatory: true, RabbitMqProperties.ToAmqp(sent), new byte[] { 42 });
        var got = await GetAsync(channel, queue);
        return RabbitMqProperties.FromAmqp(got.BasicProperties);
    }

    private static async Task<BasicGetResult> GetAsync(IChannel channel, string queue)
    {
        for (var i = 0; i < 100; i++)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
            {
                return got;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"Nothing arrived in '{queue}' within 5 s.");
    }

    /// <summary>Issue 19, point 7: the pooled publish writes a message without options as the general path does
    /// (MessageBroker.DefaultProperties through ToAmqp), over whatever a previous publish left in its properties.</summary>
    [Test]
    public void ThePooledPublishsProperties_AreWhatTheGeneralPathMakes_WhateverWasThereBefore()
    {
        var now = new DateTimeOffset(2026, 12, 3, 10, 0, 0, 500, TimeSpan.Zero).UtcTicks;
        var general = RabbitMqProperties.ToAmqp(MessageBroker.DefaultProperties("a body", now));
        var pooled = new BasicProperties
        {
            CorrelationId = "old",
            ReplyTo = "old",
            ContentType = "old",
            Priority = 9,
            Expiration = "100",
            DeliveryMode = DeliveryModes.Transient,
            Headers = new Dictionary<string, object?> { [RabbitMqConfirmChannel.NumberHeader] = 5L },
        };
        RabbitMqProperties.WriteDefault(pooled, general.MessageId!, typeof(string).FullName!, now);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(pooled.MessageId, Is.EqualTo(general.MessageId));
            Assert.That(pooled.Type, Is.EqualTo(general.Type));
            Assert.That(pooled.Timestamp, Is.EqualTo(general.Timestamp));
            Assert.That(pooled.DeliveryMode, Is.EqualTo(general.DeliveryMode));
            Assert.That(pooled.Priority, Is.EqualTo(general.Priority));
            Assert.That(pooled.CorrelationId, Is.EqualTo(general.CorrelationId));
            Assert.That(pooled.ReplyTo, Is.EqualTo(general.ReplyTo));
            Assert.That(pooled.ContentType, Is.EqualTo(general.ContentType));
            Assert.That(pooled.Expiration, Is.EqualTo(general.Expiration));
            Assert.That(pooled.AppId, Is.EqualTo(general.AppId));
            Assert.That(pooled.Headers!.Keys, Is.EqualTo(new[] { RabbitMqConfirmChannel.NumberHeader }), "only the transport's number header, which the channel sets");
            Assert.That(general.Headers, Is.Null);
        }

        Assert.Throws<ArgumentException>(() => RabbitMqProperties.WriteDefault(pooled, "id", new string('x', 256), now), "a type name AMQP cannot carry is refused as ToAmqp refuses it");
    }
}
