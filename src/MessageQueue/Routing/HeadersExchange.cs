namespace MessageQueue.Routing;

/// <summary>
/// Routes by matching binding arguments against message headers, as RabbitMQ 3.10+ does: <c>x-match</c> =
/// <c>all</c> (the default) or <c>any</c> match the arguments that do not start with <c>x-</c>;
/// <c>all-with-x</c> and <c>any-with-x</c> match the <c>x-</c> arguments too. The <c>x-match</c> argument itself
/// is never matched against a header.
/// </summary>
internal sealed class HeadersExchange(string name, ExchangeOptions options) : Exchange(name, ExchangeType.Headers, options)
{
    internal const string MatchArgument = "x-match";
    internal const string All = "all";
    internal const string Any = "any";
    internal const string AllWithX = "all-with-x";
    internal const string AnyWithX = "any-with-x";

    private volatile Compiled[] _compiled = [];

    internal override string? CheckBinding(string routingKey, IReadOnlyDictionary<string, object?>? arguments)
    {
        if (arguments is not null && arguments.TryGetValue(MatchArgument, out var mode) && mode is not (All or Any or AllWithX or AnyWithX))
        {
            return $"The binding to headers exchange '{Name}' has x-match = '{mode}'; use '{All}', '{Any}', '{AllWithX}' or '{AnyWithX}' (a string, lower case).";
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
            var mode = args.TryGetValue(MatchArgument, out var m) ? m as string : null;
            _all = mode is not (Any or AnyWithX);
            var withX = mode is AllWithX or AnyWithX;

            // x-match is never a header to match; other x- arguments are with all-with-x and any-with-x only.
            _arguments = [.. args.Where(a => a.Key != MatchArgument && (withX || !a.Key.StartsWith("x-", StringComparison.Ordinal)))];
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
