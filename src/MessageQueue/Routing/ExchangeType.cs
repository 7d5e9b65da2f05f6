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
    /// or <c>any</c>; arguments starting with <c>x-</c> are not matched.</summary>
    Headers,
}
