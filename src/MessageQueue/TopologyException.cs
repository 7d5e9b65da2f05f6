namespace MessageQueue;

/// <summary>
/// An exchange, queue or binding is unknown, invalid, or conflicts with an earlier declaration.
/// <see cref="Problems"/> lists every problem found, not only the first.
/// </summary>
public sealed class TopologyException : MessageQueueException
{
    /// <summary>Creates an exception for one problem.</summary>
    /// <param name="message">The problem, naming the exchange or queue.</param>
    public TopologyException(string message) : base(message) => Problems = [message];

    /// <summary>Creates an exception listing several problems.</summary>
    /// <param name="problems">Every problem found, each naming its exchange, queue or binding.</param>
    public TopologyException(IReadOnlyList<string> problems)
        : base(Format(problems)) => Problems = problems;

    /// <summary>Creates an exception with a default message.</summary>
    public TopologyException() : this("The topology is invalid.") { }

    /// <summary>Creates an exception for one problem with its cause.</summary>
    /// <param name="message">The problem.</param>
    /// <param name="innerException">The cause.</param>
    public TopologyException(string message, Exception? innerException) : base(message, innerException) => Problems = [message];

    /// <summary>Gets every problem found.</summary>
    public IReadOnlyList<string> Problems { get; }

    private static string Format(IReadOnlyList<string> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        return problems.Count == 1
            ? problems[0]
            : $"The topology has {problems.Count} problems:{Environment.NewLine}- " + string.Join(Environment.NewLine + "- ", problems);
    }
}
