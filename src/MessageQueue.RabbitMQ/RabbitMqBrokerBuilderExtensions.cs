using MessageQueue.RabbitMq;

namespace MessageQueue;

/// <summary>Runs a broker on a RabbitMQ server.</summary>
public static class RabbitMqBrokerBuilderExtensions
{
    /// <summary>Runs the broker on the RabbitMQ server at <paramref name="url"/>: <see cref="MessageBrokerBuilder.Build"/>
    /// connects and declares the topology there (idempotently), publishes wait for publisher confirms, and consumers
    /// and subscriptions consume from the server's queues. The rest of the set-up is unchanged. Queue options the
    /// transport cannot honour are refused by <see cref="MessageBrokerBuilder.Build"/>, all at once; the README's
    /// RabbitMQ section lists them and every other difference. A test harness (<c>MessageQueue.Testing</c>) ignores this
    /// and keeps the broker in memory. Works the same in <c>services.AddMessageQueue(mq => mq.UseRabbitMq(...))</c>.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="url">The server's AMQP URI, e.g. <c>amqp://user:pass@host:5672/vhost</c>.</param>
    /// <param name="configure">Sets the transport's options (queue types, connection name and timeout).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="url"/> is empty or not an <c>amqp://</c> or
    /// <c>amqps://</c> URI.</exception>
    public static MessageBrokerBuilder UseRabbitMq(this MessageBrokerBuilder builder, string url, Action<RabbitMqOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "amqp" && uri.Scheme != "amqps"))
        {
            throw new ArgumentException("The RabbitMQ URL is not an amqp:// or amqps:// URI (for example amqp://user:pass@localhost:5672/vhost).", nameof(url));
        }

        var options = new RabbitMqOptions();
        configure?.Invoke(options);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ConnectionTimeout, TimeSpan.Zero, "options.ConnectionTimeout");
        ArgumentOutOfRangeException.ThrowIfLessThan(options.RecoveryTimeout, TimeSpan.Zero, "options.RecoveryTimeout");
        foreach (var node in options.ClusterNodes)
        {
            _ = RabbitMqTransport.Endpoint(node, uri); // a bad node is refused here, naming it
        }

        if (options.ManagementUrl is { } management && (!Uri.TryCreate(management, UriKind.Absolute, out var api) || (api.Scheme != Uri.UriSchemeHttp && api.Scheme != Uri.UriSchemeHttps)))
        {
            throw new ArgumentException("RabbitMqOptions.ManagementUrl is not an http:// or https:// URL (for example http://localhost:15672/).", nameof(configure));
        }

        builder.Transport = new RabbitMqTransport(uri, options);
        return builder;
    }

    /// <summary>Runs the broker on the RabbitMQ server whose AMQP URL is the connection string
    /// <paramref name="connectionStringName"/> of <paramref name="configuration"/> (<c>ConnectionStrings:RabbitMq</c> by
    /// default, for example from <c>appsettings.json</c> or the <c>ConnectionStrings__RabbitMq</c> environment
    /// variable), as <see cref="UseRabbitMq(MessageBrokerBuilder, string, Action{RabbitMqOptions}?)"/> does with a URL.
    /// Under DI: <c>services.AddMessageQueue((provider, mq) => mq.UseRabbitMq(provider.GetRequiredService&lt;IConfiguration&gt;()))</c>.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="configuration">The application's configuration.</param>
    /// <param name="connectionStringName">The connection string's name.</param>
    /// <param name="configure">Sets the transport's options.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException">The configuration has no such connection string, or it is not an AMQP URL
    /// (the message names the setting).</exception>
    public static MessageBrokerBuilder UseRabbitMq(this MessageBrokerBuilder builder, Microsoft.Extensions.Configuration.IConfiguration configuration, string connectionStringName = "RabbitMq", Action<RabbitMqOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionStringName);
        var url = configuration.GetSection("ConnectionStrings")[connectionStringName];
        if (string.IsNullOrWhiteSpace(url))
        {
            throw new ArgumentException($"The configuration has no connection string 'ConnectionStrings:{connectionStringName}' for RabbitMQ (an AMQP URL such as amqp://user:pass@host:5672/vhost).", nameof(configuration));
        }

        try
        {
            return builder.UseRabbitMq(url, configure);
        }
        catch (ArgumentException ex) when (ex.ParamName == "url")
        {
            throw new ArgumentException($"The connection string 'ConnectionStrings:{connectionStringName}' is not an amqp:// or amqps:// URL.", nameof(configuration), ex);
        }
    }
}
