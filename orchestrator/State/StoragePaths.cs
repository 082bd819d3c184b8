using Training.Shared.Spec;

namespace Training.Orchestrator.State;

/// <summary>
/// The one place that turns names from outside (an API request, the run-state store, a command line) into storage paths:
/// names must match the experiment-name pattern, and every resolved path must stay under its root.
/// </summary>
public static class StoragePaths
{
    /// <summary>Longest experiment name, run id or trial id accepted.</summary>
    public const int MaxNameLength = 128;

    /// <summary>True for a name matching <c>^[a-z0-9][a-z0-9_-]*$</c> (the pattern of <c>name</c> in the experiment schema).</summary>
    public static bool IsSafeName(string? name) => name is { Length: > 0 and <= MaxNameLength } && SpecSchema.IsName(name);

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="what"/> unless the name is safe; never echoes a long or binary name.</summary>
    public static string RequireSafeName(string? name, string what)
    {
        if (IsSafeName(name)) return name!;
        throw new ArgumentException(name is null
            ? $"{what} is missing"
            : $"{what} must match [a-z0-9][a-z0-9_-]* and be at most {MaxNameLength} characters");
    }

    /// <summary>
    /// The full path of <paramref name="parts"/> below <paramref name="root"/>; throws <see cref="ArgumentException"/>
    /// when the result is the root itself or lies outside it (.., an absolute part, a separator in a name).
    /// </summary>
    public static string Child(string root, params string[] parts)
    {
        var fullRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var full = Path.GetFullPath(Path.Combine([fullRoot, .. parts]));
        if (!IsUnder(fullRoot, full))
            throw new ArgumentException("a storage path would leave its folder; refused");
        return full;
    }

    /// <summary>True when <paramref name="path"/> (made absolute) is strictly inside <paramref name="root"/>.</summary>
    public static bool IsUnder(string root, string path)
    {
        var fullRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var full = Path.GetFullPath(path);
        return full.Length > fullRoot.Length + 1
            && full.StartsWith(fullRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

}
