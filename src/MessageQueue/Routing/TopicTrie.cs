namespace MessageQueue.Routing;

/// <summary>
/// Topic matching. Keys split on <c>.</c> as RabbitMQ splits them: the empty key has no words, and
/// every other key has one more word than it has dots (so <c>"a..b"</c> has an empty middle word).
/// <c>*</c> matches exactly one word, <c>#</c> zero or more.
/// </summary>
internal sealed class TopicTrie
{
    private readonly Node _root = new();

    internal TopicTrie(IEnumerable<Binding> bindings)
    {
        foreach (var binding in bindings)
        {
            var node = _root;
            if (binding.RoutingKey.Length > 0)
            {
                foreach (var word in binding.RoutingKey.Split('.'))
                {
                    node = node.Child(word);
                }
            }

            node.Ends.Add(binding);
        }

        _root.Freeze();
    }

    internal void Match(string key, RouteCollector collector) =>
        Walk(_root, key, key.Length == 0 ? 1 : 0, collector);

    // `start` is where the next word begins; start > key.Length means no words are left.
    private static void Walk(Node node, string key, int start, RouteCollector collector)
    {
        if (start > key.Length)
        {
            foreach (var b in node.EndsArray)
            {
                collector.Add(b);
            }

            if (node.Hash is { } trailingHash)
            {
                Walk(trailingHash, key, start, collector);
            }

            return;
        }

        var dot = key.IndexOf('.', start);
        var end = dot < 0 ? key.Length : dot;
        var next = end + 1;

        if (node.Words is not null && node.Lookup.TryGetValue(key.AsSpan(start, end - start), out var child))
        {
            Walk(child, key, next, collector);
        }

        if (node.Star is { } star)
        {
            Walk(star, key, next, collector);
        }

        if (node.Hash is { } hash)
        {
            // '#' takes zero words, then one, two, ... up to all that are left.
            var s = start;
            while (true)
            {
                Walk(hash, key, s, collector);
                if (s > key.Length)
                {
                    break;
                }

                var d = key.IndexOf('.', s);
                s = d < 0 ? key.Length + 1 : d + 1;
            }
        }
    }

    private sealed class Node
    {
        internal Dictionary<string, Node>? Words;
        internal Dictionary<string, Node>.AlternateLookup<ReadOnlySpan<char>> Lookup;
        internal Node? Star;
        internal Node? Hash;
        internal List<Binding> Ends = [];
        internal Binding[] EndsArray = [];

        internal Node Child(string word)
        {
            switch (word)
            {
                case "*":
                    return Star ??= new Node();
                case "#":
                    return Hash ??= new Node();
                default:
                    Words ??= new Dictionary<string, Node>(StringComparer.Ordinal);
                    if (!Words.TryGetValue(word, out var child))
                    {
                        Words[word] = child = new Node();
                    }

                    return child;
            }
        }

        internal void Freeze()
        {
            EndsArray = [.. Ends];
            if (Words is not null)
            {
                Lookup = Words.GetAlternateLookup<ReadOnlySpan<char>>();
                foreach (var child in Words.Values)
                {
                    child.Freeze();
                }
            }

            Star?.Freeze();
            Hash?.Freeze();
        }
    }
}
