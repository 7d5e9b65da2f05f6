namespace MessageQueue;

/// <summary>
/// Declares the name a message type is known by outside the process: in durable and lazy queues' stores, in
/// <see cref="MessageProperties.MessageType"/>, and (on RabbitMQ) in the AMQP <c>type</c> property. A type with a
/// declared name can be renamed or moved to another namespace or assembly and still read what was stored under its
/// name. Without it, the name is the CLR full name without the assembly (<c>MyApp.Orders.OrderCreated</c>), so moving
/// a type to another assembly is already safe, but renaming it or changing its namespace is not.
/// </summary>
/// <example><code>[MessageType("orders.created")] public sealed record OrderCreated(int Id);</code></example>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct, Inherited = false, AllowMultiple = false)]
public sealed class MessageTypeAttribute : Attribute
{
    /// <summary>Declares the name.</summary>
    /// <param name="name">1 to 255 characters, no control characters and no commas (a comma marks the
    /// assembly-qualified names older versions stored); unique among the application's message types.</param>
    /// <exception cref="ArgumentException">The name is empty, too long, or has a control character or a comma.</exception>
    public MessageTypeAttribute(string name)
    {
        MessageTypeNames.Validate(name, nameof(name));
        Name = name;
    }

    /// <summary>Gets the declared name.</summary>
    public string Name { get; }
}
