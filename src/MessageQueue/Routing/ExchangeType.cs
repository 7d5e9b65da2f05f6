namespace MessageQueue;

/// <summary>How an exchange picks the queues and exchanges a message goes to.</summary>
public enum ExchangeType
{
    /// <summary>To every binding whose key equals the routing key.</summary>
    Direct,

    /// <summary>To every binding, whatever the routing key.</summary>
    Fanout,

    /// <summary>To bindings whose pattern matches the routing key: words separated by <c>.</c>,
    /// <c>*</c> matches exactly one word, <c>#</c> matches zero or more words.</summary>
    Topic,

    /// <summary>To bindings whose arguments match the message headers: <c>x-match</c> = <c>all</c> (the default)
    /// or <c>any</c>, where arguments starting with <c>x-</c> are not matched; or <c>all-with-x</c> or
    /// <c>any-with-x</c>, where they are (as in RabbitMQ 3.10+). The <c>x-match</c> argument itself is never
    /// matched.</summary>
    Headers,
}
