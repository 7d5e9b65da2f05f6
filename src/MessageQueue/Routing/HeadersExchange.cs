namespace MessageQueue.Routing;

/// <summary>Routes by matching binding arguments against message headers (<c>x-match</c> all or any).</summary>
internal sealed class HeadersExchange(string name, ExchangeOptions options) : Exchange(name, ExchangeType.Headers, options)
{
    internal const string MatchArgument = "x-match";

    private volatile Compiled[] _compiled = [];

    internal override string? CheckBinding(string routingKey, IReadOnlyDictionary<string, object?>? arguments)
    {
        if (arguments is not null && arguments.TryGetValue(MatchArgument, out var mode) && mode is not ("all" or "any"))
        {
            return $"The binding to headers exchange '{Name}' has x-match = '{mode}'; use 'all' or 'any'.";
        }

        return null;
    }

    internal override void Match(string routingKey, MessageProperties? properties, RouteCollector collector)
    {
        var headers = properties?.Headers;
        foreach (var c in _compiled)
        {
            if (c.Matches(headers))
            {
                collector.Add(c.Binding);
            }
        }
    }

    protected override void Compile(Binding[] bindings) =>
        _compiled = [.. bindings.Select(b => new Compiled(b))];

    private sealed class Compiled
    {
        private readonly bool _all;
        private readonly KeyValuePair<string, object?>[] _arguments;

        internal Compiled(Binding binding)
        {
            Binding = binding;
            var args = binding.Arguments ?? new Dictionary<string, object?>();
            _all = !(args.TryGetValue(MatchArgument, out var mode) && mode is "any");
            _arguments = [.. args.Where(a => !a.Key.StartsWith("x-", StringComparison.Ordinal))];
        }

        internal Binding Binding { get; }

        internal bool Matches(IReadOnlyDictionary<string, object?>? headers)
        {
            if (_arguments.Length == 0)
            {
                return _all; // RabbitMQ: 'all' of nothing is true, 'any' of nothing is false.
            }

            foreach (var (key, expected) in _arguments)
            {
                var present = headers is not null && headers.TryGetValue(key, out var actual)
                    && (expected is null || HeaderValues.ValuesEqual(expected, actual));
                if (_all && !present)
                {
                    return false;
                }

                if (!_all && present)
                {
                    return true;
                }
            }

            return _all;
        }
    }
}
