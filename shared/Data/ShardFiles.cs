using System.Text;
using System.Text.RegularExpressions;

namespace Training.Shared.Data;

/// <summary>Turns user-given shard patterns (files, directories, globs) into a sorted list of parquet files.</summary>
public static class ShardFiles
{
    public const string ShardExtension = ".parquet";

    /// <summary>
    /// Resolves each pattern against <paramref name="baseDirectory"/>: a file is taken as is; a directory contributes the
    /// <c>*.parquet</c> files directly inside it (not subfolders, so <c>OUT/train</c> and <c>OUT/eval</c> stay apart);
    /// a glob may use <c>*</c> and <c>?</c> within a path segment and <c>**</c> for any number of folders.
    /// Returns sorted (ordinal), distinct absolute paths. A pattern that matches nothing throws <see cref="FileNotFoundException"/>.
    /// </summary>
    public static IReadOnlyList<string> Resolve(IEnumerable<string> patterns, string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        var root = Path.GetFullPath(baseDirectory);
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var any = false;
        foreach (var pattern in patterns)
        {
            any = true;
            if (string.IsNullOrWhiteSpace(pattern))
                throw new ArgumentException("Shard pattern is empty.", nameof(patterns));
            var matches = ResolveOne(pattern, root);
            if (matches.Count == 0)
                throw new FileNotFoundException(
                    $"Shard pattern '{pattern}' matched no parquet files (resolved against '{root}').", pattern);
            found.UnionWith(matches);
        }

        if (!any) throw new ArgumentException("No shard patterns were given.", nameof(patterns));
        return found.ToList();
    }

    private static List<string> ResolveOne(string pattern, string root)
    {
        var full = Path.GetFullPath(pattern, root);
        if (!HasWildcard(pattern))
        {
            if (File.Exists(full)) return [full];
            if (Directory.Exists(full))
                return Directory.EnumerateFiles(full, "*" + ShardExtension, SearchOption.TopDirectoryOnly)
                    .Where(f => f.EndsWith(ShardExtension, StringComparison.Ordinal))
                    .Select(Path.GetFullPath)
                    .ToList();
            return [];
        }

        return Glob(full);
    }

    private static bool HasWildcard(string pattern) => pattern.IndexOfAny(['*', '?']) >= 0;

    // Walks the folder tree from the longest wildcard-free prefix, matching one segment per level.
    private static List<string> Glob(string fullPattern)
    {
        var segments = fullPattern.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var firstWild = Array.FindIndex(segments, HasWildcard);
        var start = Path.GetPathRoot(fullPattern) ?? "/";
        var baseDir = Path.Combine([start, .. segments[..firstWild]]);
        var rest = segments[firstWild..];

        var results = new List<string>();
        if (Directory.Exists(baseDir)) Walk(baseDir, rest, 0, results);
        return results.Distinct(StringComparer.Ordinal).ToList();
    }

    private static void Walk(string directory, string[] segments, int index, List<string> results)
    {
        var segment = segments[index];
        var isLast = index == segments.Length - 1;
        if (segment == "**")
        {
            // '**' matches zero folders (try the next segment here) or one more folder (stay on '**' one level down).
            if (isLast)
            {
                results.AddRange(Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Select(Path.GetFullPath));
                return;
            }

            Walk(directory, segments, index + 1, results);
            foreach (var child in Directory.EnumerateDirectories(directory))
                Walk(child, segments, index, results);
            return;
        }

        var regex = SegmentRegex(segment);
        if (isLast)
        {
            results.AddRange(Directory.EnumerateFiles(directory)
                .Where(f => regex.IsMatch(Path.GetFileName(f)))
                .Select(Path.GetFullPath));
            return;
        }

        foreach (var child in Directory.EnumerateDirectories(directory))
            if (regex.IsMatch(Path.GetFileName(child)))
                Walk(child, segments, index + 1, results);
    }

    private static Regex SegmentRegex(string segment)
    {
        var pattern = new StringBuilder("^");
        foreach (var c in segment)
            pattern.Append(c switch
            {
                '*' => ".*",
                '?' => ".",
                _ => Regex.Escape(c.ToString()),
            });
        pattern.Append('$');
        return new Regex(pattern.ToString(), RegexOptions.CultureInvariant);
    }
}
