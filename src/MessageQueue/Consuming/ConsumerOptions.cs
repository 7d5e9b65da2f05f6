namespace MessageQueue;

/// <summary>Options of a pull consumer.</summary>
public sealed class ConsumerOptions
{
    /// <summary>Gets or sets how many deliveries the consumer may hold unsettled (its prefetch window).</summary>
    /// <value>The default value is 32.</value>
    public int Prefetch { get; set; } = 32;

    /// <summary>Gets or sets when deliveries are acknowledged.</summary>
    /// <value>The default value is <see cref="AckMode.Manual"/>.</value>
    public AckMode AckMode { get; set; } = AckMode.Manual;
}
