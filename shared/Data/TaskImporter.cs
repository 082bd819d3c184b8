using System.Text.Json;

namespace Training.Shared.Data;

/// <summary>What a task import wrote.</summary>
public sealed record TaskImportResult(int Train, int Eval, IReadOnlyList<string> Files);

/// <summary>
/// Writes task examples as task shards: <c>OUT/train/shard-00000.parquet ...</c> and, with held-out examples,
/// <c>OUT/eval/shard-00000.parquet ...</c> (the layout <see cref="DocumentImporter"/> writes for text). Sources are
/// JSONL files (one object per line with string fields <c>prompt</c> and <c>target</c>, optional <c>id</c>) or a
/// synthetic task generated from a seed (<see cref="SyntheticTasks"/>).
/// </summary>
public static class TaskImporter
{
    /// <summary>Reads every <c>*.jsonl</c> file under <paramref name="from"/> (or the one file) in name order; a bad line
    /// fails the import naming the file and line.</summary>
    public static IReadOnlyList<TaskExample> ReadJsonl(string from)
    {
        var files = File.Exists(from)
            ? [Path.GetFullPath(from)]
            : Directory.Exists(from)
                ? Directory.EnumerateFiles(from, "*.jsonl", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList()
                : throw new FileNotFoundException($"'{Path.GetFullPath(from)}' does not exist.", from);
        if (files.Count == 0) throw new FileNotFoundException($"'{Path.GetFullPath(from)}' holds no *.jsonl files.", from);
        var examples = new List<TaskExample>();
        foreach (var file in files)
        {
            var number = 0;
            foreach (var line in File.ReadLines(file))
            {
                number++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                examples.Add(ParseLine(line, file, number));
            }
        }
        return examples;
    }

    private static TaskExample ParseLine(string line, string file, int number)
    {
        string Fail(string why) => throw new InvalidDataException($"{file}:{number}: {why}");
        try
        {
            using var json = JsonDocument.Parse(line);
            if (json.RootElement.ValueKind != JsonValueKind.Object) Fail("expected a JSON object with \"prompt\" and \"target\"");
            string? Field(string name, bool required)
            {
                if (!json.RootElement.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
                    return required ? Fail($"missing \"{name}\"") : null;
                return value.ValueKind == JsonValueKind.String ? value.GetString() : Fail($"\"{name}\" must be a string, not {value.ValueKind}");
            }
            return new TaskExample(Field("id", false) ?? $"{Path.GetFileNameWithoutExtension(file)}-{number}", Field("prompt", true)!, Field("target", true)!);
        }
        catch (JsonException e)
        {
            return new TaskExample("", Fail($"not JSON ({e.Message})"), "");
        }
    }

    /// <summary>Writes <paramref name="train"/> and <paramref name="eval"/> under <paramref name="outDirectory"/>,
    /// replacing any earlier train/ and eval/ folders there.</summary>
    public static TaskImportResult Write(IReadOnlyList<TaskExample> train, IReadOnlyList<TaskExample> eval, string outDirectory, int rowsPerShard)
    {
        if (train.Count == 0) throw new InvalidDataException("no training examples to write");
        var files = new List<string>();
        foreach (var (folder, examples) in new[] { (DocumentImporter.TrainFolder, train), (DocumentImporter.EvalFolder, eval) })
        {
            var directory = Path.Combine(Path.GetFullPath(outDirectory), folder);
            if (Directory.Exists(directory))
                foreach (var old in Directory.EnumerateFiles(directory, "shard-*" + ShardFiles.ShardExtension)) File.Delete(old);
            var shard = 0;
            foreach (var chunk in examples.Chunk(rowsPerShard))
            {
                var path = Path.Combine(directory, $"shard-{shard++:D5}{ShardFiles.ShardExtension}");
                TaskShardWriter.WriteFile(path, chunk, rowGroupSize: Math.Min(rowsPerShard, 1000));
                files.Add(path);
            }
        }
        return new TaskImportResult(train.Count, eval.Count, files);
    }

    /// <summary>Splits off a seeded random <paramref name="evalFraction"/> of the examples as held-out.</summary>
    public static (IReadOnlyList<TaskExample> Train, IReadOnlyList<TaskExample> Eval) Split(IReadOnlyList<TaskExample> examples, double evalFraction, int seed)
    {
        var evalCount = evalFraction <= 0 ? 0 : Math.Clamp((int)Math.Round(evalFraction * examples.Count), 1, examples.Count - 1);
        var held = DeterministicShuffle.Permutation(examples.Count, seed, stream: 0).Take(evalCount).ToHashSet();
        return ([.. examples.Where((_, i) => !held.Contains(i))], [.. examples.Where((_, i) => held.Contains(i))]);
    }
}

/// <summary>
/// Synthetic seq2seq tasks for tests, the distillation example and benchmarks: small enough that a tiny model learns
/// them in minutes on a CPU, hard enough that a bigger one learns them better. Every example is a pure function of
/// (kind, seed, index); train and held-out sets use different seeds, and held-out prompts never occur in train.
/// </summary>
public static class SyntheticTasks
{
    public static readonly IReadOnlyList<string> Kinds = ["reverse", "sort", "add"];

    /// <summary><paramref name="count"/> examples of <paramref name="kind"/>, none whose prompt is in <paramref name="exclude"/>.</summary>
    public static IReadOnlyList<TaskExample> Generate(string kind, int count, int seed, IReadOnlySet<string>? exclude = null)
    {
        if (!Kinds.Contains(kind)) throw new ArgumentException($"unknown synthetic task '{kind}': use {string.Join(", ", Kinds)}");
        var rng = new Random(seed);
        var seen = new HashSet<string>();
        var examples = new List<TaskExample>(count);
        for (var attempts = 0; examples.Count < count; attempts++)
        {
            if (attempts > count * 50) throw new InvalidOperationException($"cannot draw {count} distinct '{kind}' prompts");
            var (prompt, target) = kind switch
            {
                "reverse" => Reverse(rng),
                "sort" => Sort(rng),
                _ => Add(rng),
            };
            if (exclude?.Contains(prompt) == true || !seen.Add(prompt)) continue;
            examples.Add(new TaskExample($"{kind}-{seed}-{examples.Count}", prompt, target));
        }
        return examples;
    }

    private static string Letters(Random rng, int min, int max) =>
        new([.. Enumerable.Range(0, rng.Next(min, max + 1)).Select(_ => (char)('a' + rng.Next(12)))]);

    // "reverse: abcd" -> "dcba"
    private static (string, string) Reverse(Random rng)
    {
        var word = Letters(rng, 4, 9);
        return ($"reverse: {word}", new string([.. word.Reverse()]));
    }

    // "sort: dbca" -> "abcd"
    private static (string, string) Sort(Random rng)
    {
        var word = Letters(rng, 4, 9);
        return ($"sort: {word}", new string([.. word.Order()]));
    }

    // "add: 123+45" -> "168"
    private static (string, string) Add(Random rng)
    {
        var (a, b) = (rng.Next(0, 1000), rng.Next(0, 1000));
        return ($"add: {a}+{b}", (a + b).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
