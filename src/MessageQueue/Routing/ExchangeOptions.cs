namespace MessageQueue;

/// <summary>Options of an exchange.</summary>
public sealed class ExchangeOptions
{
    /// <summary>Gets or sets the exchange that receives messages this exchange cannot route to any destination.</summary>
    /// <value>The default value is <see langword="null"/>: unroutable messages are dropped (or rejected when
    /// published with <see cref="PublishOptions.Mandatory"/>).</value>
    public string? AlternateExchange { get; set; }

    internal ExchangeOptions Clone() => new() { AlternateExchange = AlternateExchange };

    internal bool IsEquivalentTo(ExchangeOptions other) => AlternateExchange == other.AlternateExchange;
}
