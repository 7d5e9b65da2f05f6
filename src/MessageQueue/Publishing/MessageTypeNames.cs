using System.Collections.Concurrent;
using System.Reflection;

namespace MessageQueue;

/// <summary>
/// The names message types are stored and sent under (<see cref="MessageTypeAttribute"/>, else the CLR full name
/// without the assembly), and the way back from a stored name to a type. Names are process-wide, like the types. A
/// name is looked up in the types seen so far, then in the loaded assemblies that reference this library (and, if
/// still unknown, in the entry assembly's references, loaded for it); each name is searched for once.
/// Names stored by earlier versions (assembly-qualified) still resolve.
/// </summary>
internal static class MessageTypeNames
{
    private const int MaxLength = 255;
    private static readonly ConcurrentDictionary<Type, string> Names = new();
    private static readonly ConcurrentDictionary<string, Resolution> Types = new(StringComparer.Ordinal);
    private static readonly string LibraryName = typeof(MessageTypeNames).Assembly.GetName().Name!;

    /// <summary>The name <paramref name="type"/> is stored and sent under; remembers the way back.</summary>
    internal static string NameOf(Type type)
    {
        if (Names.TryGetValue(type, out var name))
        {
            return name;
        }

        name = type.GetCustomAttribute<MessageTypeAttribute>(inherit: false)?.Name ?? type.FullName ?? type.Name;
        // The way back: a name not found by an earlier search (the type's assembly was not loaded yet) is found now.
        Types.AddOrUpdate(name, static (_, t) => new Resolution(t, null), static (_, old, t) => old.Type is null ? new Resolution(t, null) : old, type);
        return Names.GetOrAdd(type, name);
    }

    /// <summary>Finds the type stored under <paramref name="name"/>; false with a reason when none or several are.
    /// A name searched for in vain is not searched again (a backlog of a million such messages costs one search),
    /// unless a type of that name is used meanwhile.</summary>
    internal static bool TryResolve(string name, out Type? type, out string? failure)
    {
        var found = Types.GetOrAdd(name, Search);
        type = found.Type;
        failure = found.Failure;
        return type is not null;
    }

    /// <summary>The name to store a body of <paramref name="type"/> under, refused when another known type has it.</summary>
    /// <exception cref="MessageSerializationException">Two message types declare the same name.</exception>
    internal static string NameToStore(Type type)
    {
        var name = NameOf(type);
        if (Types.TryGetValue(name, out var known) && known.Type is { } other && other != type)
        {
            throw new MessageSerializationException(
                $"The message types '{other.AssemblyQualifiedName}' and '{type.AssemblyQualifiedName}' are both known by the name '{name}'; a stored message could not say which it is. Give one another name with [MessageType]. Nothing was enqueued.");
        }

        return name;
    }

    /// <summary>Checks a declared name.</summary>
    internal static void Validate(string name, string paramName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name, paramName);
        if (name.Length > MaxLength)
        {
            throw new ArgumentException($"A message type name is at most {MaxLength} characters; '{name[..40]}...' has {name.Length}.", paramName);
        }

        if (name.Any(char.IsControl) || name.Contains(',', StringComparison.Ordinal) || name.Trim() != name)
        {
            throw new ArgumentException($"The message type name '{name}' has a control character, a comma or surrounding spaces; a name is printable and has no comma.", paramName);
        }
    }

    private static Resolution Search(string name)
    {
        if (name.Contains(',', StringComparison.Ordinal))
        {
            // Assembly-qualified, as stored before names were declared.
            var qualified = Type.GetType(name, throwOnError: false);
            return qualified is not null
                ? new Resolution(qualified, null)
                : new Resolution(null, $"The stored body's type '{name}' no longer exists, so the message cannot be deserialized.");
        }

        var matches = Scan(name, AppDomain.CurrentDomain.GetAssemblies());
        if (matches.Count == 0)
        {
            matches = Scan(name, LoadEntryReferences());
        }

        return matches.Count switch
        {
            1 => new Resolution(matches[0], null),
            0 => new Resolution(null,
                $"No message type is known by the name '{name}': no loaded type declares it with [MessageType(\"{name}\")] and no type has that full name. " +
                "A type that was renamed keeps its stored messages readable when it declares its old name with [MessageType]."),
            _ => new Resolution(null,
                $"Several message types are known by the name '{name}' ({string.Join(", ", matches.Select(t => t.AssemblyQualifiedName))}); a name must be unique."),
        };
    }

    private static List<Type> Scan(string name, IEnumerable<Assembly> assemblies)
    {
        var matches = new List<Type>();
        foreach (var assembly in assemblies)
        {
            if (assembly.IsDynamic || !References(assembly))
            {
                continue;
            }

            foreach (var type in TypesOf(assembly))
            {
                var declared = type.GetCustomAttribute<MessageTypeAttribute>(inherit: false)?.Name;
                if (declared == name || (declared is null && type.FullName == name))
                {
                    matches.Add(type);
                }
            }
        }

        return [.. matches.Distinct()];
    }

    /// <summary>Only assemblies that reference this library can declare names (or publish messages at all).</summary>
    private static bool References(Assembly assembly) =>
        assembly.GetName().Name == LibraryName || assembly.GetReferencedAssemblies().Any(a => a.Name == LibraryName);

    private static IEnumerable<Type> TypesOf(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            return ex.Types.OfType<Type>();
        }
    }

    private static List<Assembly> LoadEntryReferences()
    {
        var loaded = new List<Assembly>();
        var known = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).ToHashSet(StringComparer.Ordinal);
        foreach (var reference in Assembly.GetEntryAssembly()?.GetReferencedAssemblies() ?? [])
        {
            if (known.Contains(reference.Name))
            {
                continue;
            }

            try
            {
                loaded.Add(Assembly.Load(reference));
            }
            catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
            {
                // Not loadable here: it cannot hold the type either.
            }
        }

        return loaded;
    }

    private sealed record Resolution(Type? Type, string? Failure);
}
