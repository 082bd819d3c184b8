using System.Text;
using System.Text.RegularExpressions;
using Training.Shared.Storage;

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

    /// <summary>
    /// Opens every shard and checks its footer, schema (a string <c>text</c> column; optional columns of the right
    /// types) and row-group metadata (row counts, the <c>text</c> chunk in every row group, chunk offsets and sizes within
    /// the file); <see cref="ShardCheckDepth.Full"/> also decodes every row group. Both <c>orchestrator validate</c> and
    /// the start of every trial use this, so a bad shard is reported before any training, naming the file and row group.
    /// Never throws for a bad file: each one becomes a <see cref="ShardFormatException"/> in the report.
    /// </summary>
    public static ShardCheckReport Check(IReadOnlyList<string> files, ShardCheckDepth depth)
    {
        ArgumentNullException.ThrowIfNull(files);
        return Check([.. files.Select(f => new LocalShardSource(f))], depth);
    }

    /// <summary>The same check for shards from any source (local files or blobs: a blob shard's layout check reads only
    /// its footer by range).</summary>
    public static ShardCheckReport Check(IReadOnlyList<IShardSource> files, ShardCheckDepth depth)
    {
        ArgumentNullException.ThrowIfNull(files);
        var problems = new List<ShardFormatException>();
        var rowGroups = 0;
        long rows = 0;
        foreach (var file in files)
        {
            try
            {
                using var reader = file.Open();
                reader.CheckLayout();
                if (depth == ShardCheckDepth.Full)
                    for (var group = 0; group < reader.RowGroupCount; group++)
                        if (reader.IsTaskShard) reader.ReadTaskRowGroup(group);
                        else reader.ReadRowGroup(group);
                rowGroups += reader.RowGroupCount;
                rows += reader.RowCount;
            }
            catch (ShardFormatException e)
            {
                problems.Add(e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new ShardFormatException(file.Name, $"cannot be read ({e.Message})", inner: e));
            }
        }

        return new ShardCheckReport(files.Count, rowGroups, rows, problems);
    }

    /// <summary>
    /// Resolves patterns to shard blobs in <paramref name="store"/>, the way <see cref="Resolve"/> does for files: an
    /// existing blob path is taken as is; otherwise a pattern without wildcards is a folder and contributes the
    /// <c>*.parquet</c> blobs directly under it; a glob may use <c>*</c> and <c>?</c> within a segment and <c>**</c> for
    /// any number of folders. Returns sorted (ordinal), distinct blob paths; a pattern that matches nothing throws
    /// <see cref="FileNotFoundException"/>. Lists only under each pattern's wildcard-free folder prefix.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ResolveBlobsAsync(
        IBlobStore store, IEnumerable<string> patterns, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(patterns);
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var any = false;
        foreach (var raw in patterns)
        {
            any = true;
            if (string.IsNullOrWhiteSpace(raw)) throw new ArgumentException("Shard pattern is empty.", nameof(patterns));
            var pattern = raw.TrimStart('/');
            List<string> matches;
            if (!HasWildcard(pattern))
            {
                var listed = await store.ListAsync(pattern.TrimEnd('/'), cancel);
                var folder = pattern.TrimEnd('/') + "/";
                matches = listed.Contains(pattern, StringComparer.Ordinal)
                    ? [pattern]
                    : [.. listed.Where(p => p.StartsWith(folder, StringComparison.Ordinal)
                                             && p.IndexOf('/', folder.Length) < 0
                                             && p.EndsWith(ShardExtension, StringComparison.Ordinal))];
            }
            else
            {
                var firstWild = pattern.IndexOfAny(['*', '?']);
                var prefix = pattern[..(pattern.LastIndexOf('/', firstWild) + 1)];
                var regex = BlobGlobRegex(pattern);
                matches = [.. (await store.ListAsync(prefix, cancel)).Where(p => regex.IsMatch(p))];
            }

            if (matches.Count == 0)
                throw new FileNotFoundException(
                    $"Shard pattern '{raw}' matched no parquet blobs in '{store.Location}'.", raw);
            found.UnionWith(matches);
        }

        if (!any) throw new ArgumentException("No shard patterns were given.", nameof(patterns));
        return found.ToList();
    }

    // '*' and '?' stay within a '/'-separated segment; a '**' segment matches any number of folders (zero included).
    private static Regex BlobGlobRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        var segments = pattern.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var last = i == segments.Length - 1;
            if (segments[i] == "**")
            {
                regex.Append(last ? ".*" : "(?:[^/]+/)*");
                continue;
            }

            foreach (var c in segments[i])
                regex.Append(c switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => Regex.Escape(c.ToString()),
                });
            if (!last) regex.Append('/');
        }

        regex.Append('$');
        return new Regex(regex.ToString(), RegexOptions.CultureInvariant);
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

/// <summary>How much of each shard <see cref="ShardFiles.Check"/> reads.</summary>
public enum ShardCheckDepth
{
    /// <summary>Footer, schema and row-group metadata only: cheap enough for every trial start.</summary>
    Layout,

    /// <summary>The layout, then every row group decoded: finds damaged row data too (reads all the data once).</summary>
    Full,
}

/// <summary>What <see cref="ShardFiles.Check"/> found: totals over the readable files and one problem per bad file.</summary>
public sealed record ShardCheckReport(int Files, int RowGroups, long Rows, IReadOnlyList<ShardFormatException> Problems)
{
    public bool Ok => Problems.Count == 0;

    /// <summary>Throws the problem of a single bad file as is, or one exception listing every bad file.</summary>
    public void ThrowIfBad(string what)
    {
        if (Problems.Count == 1) throw Problems[0];
        if (Problems.Count > 1)
            throw new InvalidDataException(
                $"{Problems.Count} of the {Files} {what} shard files are unreadable:\n  " + string.Join("\n  ", Problems.Select(p => p.Message)));
    }
}
