using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace MessageQueue.Configuration;

/// <summary>
/// Reads typed values from configuration. A value that does not parse, or a key that is not an option, is a problem
/// naming its configuration path (<c>MessageQueue:Queues:billing:MaxLength</c>), collected for <c>Build()</c>.
/// </summary>
internal sealed class ConfigurationValues(List<string> problems)
{
    internal List<string> Problems { get; } = problems;

    /// <summary>Adds a problem for every child of <paramref name="section"/> not in <paramref name="known"/>.</summary>
    internal void CheckKeys(IConfiguration section, string what, params string[] known)
    {
        foreach (var child in section.GetChildren())
        {
            if (!known.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                Problems.Add($"{child.Path}: '{child.Key}' is not {what}; known: {string.Join(", ", known)}.");
            }
        }
    }

    /// <summary>Reads a file store's section: <c>Database</c> (required), the <see cref="StorageOptions"/> keys and
    /// the store's own keys (read by the caller); an unknown key is a problem.</summary>
    /// <returns>The database, and what to apply to the store's options.</returns>
    internal (string? Database, Action<StorageOptions> Storage) StoreSection(IConfiguration section, string storeName, params string[] storeKeys)
    {
        var path = (section as IConfigurationSection)?.Path ?? "";
        CheckKeys(section, $"a {storeName} store option", ["Database", .. storeKeys, nameof(StorageOptions.LazyWindow), nameof(StorageOptions.MaxBatchSize), nameof(StorageOptions.AckDelay)]);
        var database = Text(section, "Database");
        if (string.IsNullOrWhiteSpace(database))
        {
            Problems.Add($"{path}:Database is missing: the {storeName} file path or connection string.");
        }

        return (database, Storage(section));
    }

    /// <summary>Ends the reading of a store's section: throws the problems found, all at once; else calls
    /// <paramref name="use"/> (the store's <c>Use...</c>), naming the section in the exception if it refuses a value.</summary>
    /// <returns>What <paramref name="use"/> returns.</returns>
    /// <exception cref="TopologyException">A problem was found, or <paramref name="use"/> refused a value.</exception>
    internal MessageBrokerBuilder UseStore(IConfiguration section, Func<MessageBrokerBuilder> use)
    {
        if (Problems.Count > 0)
        {
            throw new TopologyException(Problems);
        }

        try
        {
            return use();
        }
        catch (ArgumentException ex)
        {
            throw new TopologyException($"{(section as IConfigurationSection)?.Path}: {ex.Message}");
        }
    }

    /// <summary>Reads the <see cref="StorageOptions"/> keys of <paramref name="section"/>.</summary>
    /// <returns>What to apply to the options.</returns>
    internal Action<StorageOptions> Storage(IConfiguration section)
    {
        var window = Int(section, nameof(StorageOptions.LazyWindow));
        var batch = Int(section, nameof(StorageOptions.MaxBatchSize));
        var ackDelay = Duration(section, nameof(StorageOptions.AckDelay));
        return o =>
        {
            o.LazyWindow = window ?? o.LazyWindow;
            o.MaxBatchSize = batch ?? o.MaxBatchSize;
            o.AckDelay = ackDelay ?? o.AckDelay;
        };
    }

    internal static string? Text(IConfiguration section, string key) => section[key] is { Length: > 0 } text ? text : null;

    internal bool? Bool(IConfiguration section, string key) =>
        Parse(section, key, "true or false", static (string v, out bool r) => bool.TryParse(v, out r));

    internal int? Int(IConfiguration section, string key) =>
        Parse(section, key, "a whole number", static (string v, out int r) => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out r));

    internal long? Long(IConfiguration section, string key) =>
        Parse(section, key, "a whole number", static (string v, out long r) => long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out r));

    /// <summary>A duration as <c>[d.]hh:mm:ss[.fff]</c>, or <c>Infinite</c> (<see cref="Timeout.InfiniteTimeSpan"/>).</summary>
    internal TimeSpan? Duration(IConfiguration section, string key) =>
        Parse(section, key, "a duration ([d.]hh:mm:ss[.fff], or Infinite)", static (string v, out TimeSpan r) =>
        {
            if (string.Equals(v, "Infinite", StringComparison.OrdinalIgnoreCase))
            {
                r = Timeout.InfiniteTimeSpan;
                return true;
            }

            return TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out r);
        });

    internal T? Enum<T>(IConfiguration section, string key)
        where T : struct, Enum =>
        Parse(section, key, $"one of {string.Join(", ", System.Enum.GetNames<T>())}",
            static (string v, out T r) => System.Enum.TryParse(v, ignoreCase: true, out r) && System.Enum.IsDefined(r) && !int.TryParse(v, out _));

    private delegate bool TryParse<T>(string value, out T result);

    private T? Parse<T>(IConfiguration section, string key, string expected, TryParse<T> parse)
        where T : struct
    {
        var child = section.GetSection(key);
        if (child.Value is not { } value)
        {
            return null;
        }

        if (parse(value.Trim(), out var result))
        {
            return result;
        }

        Problems.Add($"{child.Path}: '{value}' is not {expected}.");
        return null;
    }
}
