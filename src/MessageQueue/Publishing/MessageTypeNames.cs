using System.Collections.Concurrent;
using System.Reflection;

namespace MessageQueue;

/// <summary>
/// The names message types are stored and sent under (<see cref="MessageTypeAttribute"/>, else the CLR full name
/// without the assembly), and the way back from a stored name to a type. Names are process-wide, like the types.
/// A name is resolved by a search of the loaded assemblies (the types declaring it, and the type of that full name),
/// loading the entry assembly's references when nothing is found; the answer is kept, and a miss is searched again
/// once another assembly has loaded. A name that several types answer to is ambiguous: it is never resolved, and
/// none of those types can be stored. Names stored by earlier versions (assembly-qualified) still resolve.
/// </summary>
internal static class MessageTypeNames
{
    private const int MaxLength = 255;
    private static readonly ConcurrentDictionary<Type, string> Names = new();
    private static readonly ConcurrentDictionary<string, Resolution> Types = new(StringComparer.Ordinal);
    private static readonly string LibraryName = typeof(MessageTypeNames).Assembly.GetName().Name!;
    private static int _generation;

    static MessageTypeNames() => AppDomain.CurrentDomain.AssemblyLoad += (_, _) => Interlocked.Increment(ref _generation);

    /// <summary>The name <paramref name="type"/> is stored and sent under.</summary>
    internal static string NameOf(Type type) =>
        Names.TryGetValue(type, out var name)
            ? name
            : Names.GetOrAdd(type, static t => t.GetCustomAttribute<MessageTypeAttribute>(inherit: false)?.Name ?? t.FullName ?? t.Name);

    /// <summary>Finds the type stored under <paramref name="name"/>; false with a reason when none or several are.
    /// Each name is searched for once (a backlog of a million messages of an unknown type costs one search), and again
    /// after another assembly has loaded.</summary>
    internal static bool TryResolve(string name, out Type? type, out string? failure)
    {
        var found = Types.GetOrAdd(name, Search);
        if (found.Type is null && found.Generation != Volatile.Read(ref _generation))
        {
            found = Search(name);
            Types[name] = found;
        }

        type = found.Type;
        failure = found.Failure;
        return type is not null;
    }

    /// <summary>The name to store a body of <paramref name="type"/> under; refused when the name would not lead back
    /// to this type (another type answers to it too, or instead).</summary>
    /// <exception cref="MessageSerializationException">Two message types are known by the same name.</exception>
    internal static string NameToStore(Type type)
    {
        var name = NameOf(type);
        if (!TryResolve(name, out var resolved, out var failure))
        {
            return resolved is null && failure is not null && failure.StartsWith(Ambiguous, StringComparison.Ordinal)
                ? throw new MessageSerializationException($"A '{type.FullName}' cannot be stored: {failure} Give one of them another name with [MessageType]. Nothing was enqueued.")
                : name; // not found by a search (a type of a dynamic assembly): stored under its name all the same
        }

        return resolved == type
            ? name
            : throw new MessageSerializationException(
                $"The message types '{resolved!.AssemblyQualifiedName}' and '{type.AssemblyQualifiedName}' are both known by the name '{name}'; a stored message could not say which it is. Give one another name with [MessageType]. Nothing was enqueued.");
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

    private const string Ambiguous = "Several message types are known by the name";

    private static Resolution Search(string name)
    {
        var generation = Volatile.Read(ref _generation);
        var matches = Find(name, AppDomain.CurrentDomain.GetAssemblies());
        if (matches.Count == 0 && LoadEntryReferences() > 0)
        {
            generation = Volatile.Read(ref _generation);
            matches = Find(name, AppDomain.CurrentDomain.GetAssemblies());
        }

        return matches.Count switch
        {
            1 => new Resolution(matches[0], null, generation),
            0 => new Resolution(null,
                $"No message type is known by the name '{name}': no loaded type declares it with [MessageType(\"{name}\")] and no type has that full name. " +
                "A type that was renamed keeps its stored messages readable when it declares its old name with [MessageType].",
                generation),
            _ => new Resolution(null,
                $"{Ambiguous} '{name}' ({string.Join(", ", matches.Select(t => t.AssemblyQualifiedName))}); a name must lead to one type.",
                generation),
        };
    }

    /// <summary>The types answering to <paramref name="name"/>: those declaring it, and the type of that full name
    /// (also an assembly-qualified name as stored before, a generic type's full name, an array).</summary>
    private static List<Type> Find(string name, Assembly[] assemblies)
    {
        var matches = new List<Type>();
        if (name.Contains(',', StringComparison.Ordinal) && Type.GetType(name, throwOnError: false) is { } qualified)
        {
            matches.Add(qualified); // "Full.Name, Assembly" as earlier versions stored it (loads the assembly)
        }

        foreach (var assembly in assemblies)
        {
            if (assembly.IsDynamic)
            {
                continue;
            }

            if (References(assembly))
            {
                foreach (var type in TypesOf(assembly))
                {
                    if (type.GetCustomAttribute<MessageTypeAttribute>(inherit: false)?.Name == name)
                    {
                        matches.Add(type);
                    }
                }
            }

            if (TypeNamed(assembly, name) is { } named)
            {
                matches.Add(named); // any assembly (a contracts library of plain types, CoreLib for a string)
            }
        }

        return [.. matches.Distinct()];
    }

    private static Type? TypeNamed(Assembly assembly, string name)
    {
        try
        {
            return assembly.GetType(name, throwOnError: false);
        }
        catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or FileLoadException or BadImageFormatException or TypeLoadException)
        {
            return null; // a malformed name, or a type argument whose assembly is not there
        }
    }

    /// <summary>Only assemblies that reference this library can declare names.</summary>
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

    /// <summary>Loads the assemblies the entry assembly references, directly or not, that are not loaded yet (a
    /// contracts library nobody touched before the broker recovers); framework assemblies are skipped. Returns how
    /// many were loaded.</summary>
    private static int LoadEntryReferences()
    {
        var loaded = 0;
        var seen = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).ToHashSet(StringComparer.Ordinal);
        var pending = new Queue<Assembly>();
        if (Assembly.GetEntryAssembly() is { } entry)
        {
            pending.Enqueue(entry);
        }

        while (pending.TryDequeue(out var assembly) && loaded < 1000)
        {
            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (reference.Name is not { } refName || IsFramework(refName) || !seen.Add(refName))
                {
                    continue;
                }

                try
                {
                    pending.Enqueue(Assembly.Load(reference));
                    loaded++;
                }
                catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
                {
                    // Not loadable here: it cannot hold the type either.
                }
            }
        }

        return loaded;
    }

    private static bool IsFramework(string name) =>
        name.StartsWith("System", StringComparison.Ordinal) || name.StartsWith("Microsoft.", StringComparison.Ordinal)
        || name is "mscorlib" or "netstandard";

    private sealed record Resolution(Type? Type, string? Failure, int Generation);
}
