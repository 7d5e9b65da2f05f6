using RabbitMQ.Client;

namespace MessageQueue.RabbitMQ.Tests;

/// <summary>
/// The RabbitMQ node the tests run against: the one <c>MQ_RABBITMQ_URL</c> names (<c>.ci/run</c> starts a private one
/// with <c>scripts/rabbitmq-node.sh</c> and sets it). Without it, tests that need a server are reported as skipped,
/// with the reason, never as passed.
/// </summary>
internal static class RabbitMqNode
{
    internal const string Variable = "MQ_RABBITMQ_URL";

    /// <summary>The node's URL, or marks the test skipped (<see cref="Assert.Ignore(string)"/>) saying how to get one.</summary>
    internal static Uri RequireUrl()
    {
        var url = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrWhiteSpace(url))
        {
            Assert.Ignore($"No RabbitMQ server: {Variable} is not set. Start a private node with 'scripts/rabbitmq-node.sh start /tmp/mq-rabbit' and set {Variable} to the URL it prints (.ci/run does both).");
        }

        return new Uri(url!);
    }

    /// <summary>A connection to the node (skips the test when there is none).</summary>
    internal static Task<IConnection> ConnectAsync() => new ConnectionFactory { Uri = RequireUrl(), ClientProvidedName = "MessageQueue.RabbitMQ.Tests" }.CreateConnectionAsync();
}
