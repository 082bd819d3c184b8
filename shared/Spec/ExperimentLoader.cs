using Training.Shared.Data;
using Training.Shared.Storage;

namespace Training.Shared.Spec;

/// <summary>
/// Reads an experiment YAML file into a validated <see cref="ExperimentSpec"/>. Nothing runs on bad input:
/// every problem (syntax, unknown key, wrong type, out of range, inconsistent keys, bad sweep, missing data)
/// is collected and thrown as one <see cref="SpecException"/> naming file, line, column and key.
/// </summary>
public static class ExperimentLoader
{
    /// <summary>Parse and validate the file, and check that every data pattern matches at least one file.</summary>
    public static ExperimentSpec Load(string path)
    {
        string text;
        try
        {
            text = ReadBounded(path);
        }
        catch (NotTextException e)
        {
            throw new SpecException([new SpecError(path, e.Line, e.Column, SourceReader.SyntaxKey, "the file is not UTF-8 text (an invalid byte here)")]);
        }
        catch (FileTooLargeException e)
        {
            throw new SpecException([new SpecError(path, 1, 1, SourceReader.FileKey, e.Message)]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SpecException([new SpecError(path, 0, 0, SourceReader.FileKey, $"cannot read the experiment file: {e.Message}")]);
        }

        var errors = new ErrorList(path);
        var (spec, documents) = ParseCore(text, path, errors);
        CheckDataExists(documents, Path.GetDirectoryName(Path.GetFullPath(path))!, errors);
        errors.ThrowIfAny();
        return spec!;
    }

    /// <summary>
    /// The file's text, reading at most <see cref="YamlLimits.MaxCharacters"/> characters whatever its size claims
    /// (a device or a growing file has no honest length).
    /// </summary>
    private static string ReadBounded(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        const int maxBytes = 4 * YamlLimits.MaxCharacters; // a UTF-8 character is at most 4 bytes
        if (stream.CanSeek && stream.Length > maxBytes) throw FileTooLargeException.Of(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{stream.Length:N0} bytes"));
        var bytes = new byte[maxBytes + 1];
        var read = 0;
        while (read < bytes.Length)
        {
            var n = stream.Read(bytes, read, bytes.Length - read);
            if (n == 0) break;
            read += n;
        }
        if (read > maxBytes) throw FileTooLargeException.Of(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"more than {maxBytes:N0} bytes"));
        var start = read >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        try
        {
            return new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, start, read - start);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            // Name the place of the first byte that is not UTF-8, never the bytes themselves.
            var index = start + Math.Max(0, e.Index);
            var line = 1 + bytes.AsSpan(0, index).Count((byte)'\n');
            var column = index - bytes.AsSpan(0, index).LastIndexOf((byte)'\n');
            throw new NotTextException(line, column);
        }
    }

    private sealed class NotTextException(int line, int column) : Exception("the file is not UTF-8 text")
    {
        public int Line { get; } = line;
        public int Column { get; } = column;
    }

    private sealed class FileTooLargeException(string message) : Exception(message)
    {
        public static FileTooLargeException Of(string size) =>
            new(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the file is too large ({size}); an experiment file holds at most {YamlLimits.MaxCharacters:N0} characters (1 MiB)"));
    }

    /// <summary>Parse and validate YAML text; data patterns are resolved against sourceFile's folder but not checked on disk.</summary>
    public static ExperimentSpec Parse(string yamlText, string sourceFile)
    {
        var errors = new ErrorList(sourceFile);
        var (spec, _) = ParseCore(yamlText, sourceFile, errors);
        errors.ThrowIfAny();
        return spec!;
    }

    /// <summary>Parse a trial's stored spec.yaml: as <see cref="Parse"/>, except that a distillation teacher still to come
    /// from an earlier stage may be missing.</summary>
    public static ExperimentSpec ParseStoredTrial(string yamlText, string sourceFile)
    {
        var errors = new ErrorList(sourceFile);
        var (spec, _) = ParseCore(yamlText, sourceFile, errors, storedTrial: true);
        errors.ThrowIfAny();
        return spec!;
    }

    /// <summary>
    /// A trial's stored spec.yaml with <c>KEY=VALUE</c> overrides on top (<c>orchestrator resume --set</c>), validated as
    /// if the values were written in the file. A key must be one a sweep may vary; errors name it and say it came from
    /// <paramref name="origin"/>.
    /// </summary>
    public static ExperimentSpec ParseStoredTrial(string yamlText, string sourceFile, IReadOnlyList<(string Key, string Value)> overrides, string origin)
    {
        var errors = new ErrorList(sourceFile);
        var read = SourceReader.Read(yamlText, errors);
        var document = read?.Document.AsStoredTrial();
        foreach (var (key, _) in overrides)
        {
            switch (SpecSchema.Find(key))
            {
                case { Sweepable: true }:
                    break;
                case { }:
                    errors.Add(SourcePosition.Unknown, key, $"{origin}: {key} cannot be changed on resume: it identifies the experiment or its data");
                    break;
                default:
                    errors.Add(SourcePosition.Unknown, key, $"{origin}: unknown key \"{key}\"; nearest allowed keys: {string.Join(", ", Suggest.Closest(key, SpecSchema.SweepableKeys, 5))}");
                    break;
            }
        }
        if (document is not null && errors.Count == 0)
        {
            var changed = document.WithOverrides(overrides.Select(o => (o.Key, new SourceScalar(o.Value, false, SourcePosition.Unknown))));
            var spec = SpecBinder.Bind(changed, sourceFile, errors);
            errors.ThrowIfAny();
            return spec!;
        }
        errors.ThrowIfAny();
        throw new InvalidDataException($"{sourceFile}: cannot be read"); // unreachable: an unreadable file has errors
    }

    /// <summary>The spec, and the documents whose data patterns must exist (the file, or each of its stages).</summary>
    private static (ExperimentSpec? Spec, IReadOnlyList<SourceDocument> Documents) ParseCore(string text, string sourceFile, ErrorList errors,
        bool storedTrial = false)
    {
        var read = SourceReader.Read(text, errors);
        if (read is null) return (null, []);
        if (storedTrial) read = read with { Document = read.Document.AsStoredTrial() };
        if (read.Stages is not null) return StageReader.Read(read, sourceFile, errors);
        var sweep = read.Sweep is null ? null : SweepReader.Read(read.Sweep, read.SweepPosition, errors);
        // The file is bound knowing which keys its sweep varies (see SourceDocument.WithSweptKeys).
        var document = sweep is null ? read.Document : read.Document.WithSweptKeys(sweep.Keys);
        var spec = SpecBinder.Bind(document, sourceFile, errors);
        if (spec is null || (read.Sweep is not null && sweep is null)) return (null, [read.Document]);
        return (spec with { Sweep = sweep is null ? null : sweep with { Base = document } }, [read.Document]);
    }

    private static void CheckDataExists(IReadOnlyList<SourceDocument> documents, string baseFolder, ErrorList errors)
    {
        // Shape errors were already reported by the binder; only look at well-formed patterns here.
        var quiet = new ErrorList("");
        var seen = new HashSet<(string, SourcePosition)>(); // a pattern of the file is in every stage's document: report it once
        foreach (var (document, key) in documents.SelectMany(d => new[] { (d, "data.train"), (d, "data.eval") }))
        {
            foreach (var (label, text, position) in SpecBinder.DataPatterns(document, key, quiet))
            {
                if (!seen.Add((label, position))) continue;
                // Blob shards are listed by `validate` and at a trial's start, with the credentials of the process
                // that reads them; loading a file never needs storage. A malformed URI was reported by the binder.
                if (ShardSources.IsBlobPattern(text) || (ShardSources.IsStorageUri(text) && ShardSources.Problem(text) is not null)) continue;
                var local = ShardSources.IsStorageUri(text) ? BlobLocation.Parse(text).Folder : text;
                var absolute = Path.GetFullPath(Path.Combine(baseFolder, local));
                if (DataPatternMatcher.Explain(absolute) is { } problem)
                    errors.Add(position, label, problem);
            }
        }
    }
}

/// <summary>
/// Does a data pattern name at least one existing file? A pattern is a glob (* within a name, ? one character,
/// ** any number of folders), a directory (holding *.parquet files directly), or a file.
/// </summary>
internal static class DataPatternMatcher
{
    /// <summary>Null when the pattern matches a file; otherwise why not, naming the resolved path.</summary>
    public static string? Explain(string absolutePattern)
    {
        var pattern = absolutePattern.Replace('\\', '/');
        if (pattern.IndexOfAny(['*', '?']) >= 0)
            return MatchesGlob(pattern) ? null : $"no file matches the glob {pattern}";
        if (Directory.Exists(pattern))
            return Directory.EnumerateFiles(pattern, "*.parquet").Any() ? null : $"the directory {pattern} holds no *.parquet files";
        return File.Exists(pattern) ? null : $"no such file or directory: {pattern}";
    }

    private static bool MatchesGlob(string pattern)
    {
        // Walk from the deepest folder without wildcards, matching the rest of the path against a regex.
        var segments = pattern.Split('/');
        var firstWild = Array.FindIndex(segments, s => s.IndexOfAny(['*', '?']) >= 0);
        var root = string.Join('/', segments[..firstWild]);
        if (root == "") root = "/";
        if (!Directory.Exists(root)) return false;
        var rest = segments[firstWild..];
        var regex = new System.Text.RegularExpressions.Regex(GlobRegex(rest));
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = rest.Length > 1 || rest.Contains("**"),
            IgnoreInaccessible = true,
        };
        return Directory.EnumerateFiles(root, "*", options)
            .Any(file => regex.IsMatch(Path.GetRelativePath(root, file).Replace('\\', '/')));
    }

    internal static string GlobRegex(IReadOnlyList<string> segments)
    {
        var builder = new System.Text.StringBuilder("^");
        for (var i = 0; i < segments.Count; i++)
        {
            var last = i == segments.Count - 1;
            if (segments[i] == "**")
            {
                // Zero or more folders; as the last segment, every file below.
                builder.Append(last ? "(?:[^/]+/)*[^/]+" : "(?:[^/]+/)*");
                continue;
            }
            foreach (var c in segments[i])
            {
                builder.Append(c switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => System.Text.RegularExpressions.Regex.Escape(c.ToString()),
                });
            }
            if (!last) builder.Append('/');
        }
        return builder.Append('$').ToString();
    }
}
