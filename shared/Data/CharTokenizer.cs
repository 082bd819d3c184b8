using System.Text;
using System.Text.Json;

namespace Training.Shared.Data;

/// <summary>
/// One token per character (Unicode scalar value), the tokenizer of the decoder-variants paper. The vocabulary is
/// the set of characters of the training shards, in code-point order, so the same shards always give the same ids.
/// Ids: pad 0, bos 1, eos 2, unknown 3 (a character the training shards did not have), the characters from 4, then
/// sentinels up to the top. Saved as JSON with each trial (<see cref="TokenizerFactory.ForTrial"/>) so a resumed
/// trial reads its own vocabulary even if the shards changed.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    public const string KindName = "char";
    public const int UnknownId = 3;
    private const int FirstCharacterId = 4;
    private const char Replacement = '\uFFFD';

    private readonly string[] characters;
    private readonly Dictionary<int, int> idOfScalar;

    /// <param name="characters">Distinct single characters (one Unicode scalar value each), in id order.</param>
    public CharTokenizer(IReadOnlyList<string> characters, int sentinelCount)
    {
        ArgumentNullException.ThrowIfNull(characters);
        if (sentinelCount < 0)
            throw new ArgumentOutOfRangeException(nameof(sentinelCount), sentinelCount, "Sentinel count cannot be negative.");
        this.characters = [.. characters];
        idOfScalar = new Dictionary<int, int>(characters.Count);
        for (var i = 0; i < this.characters.Length; i++)
        {
            var text = this.characters[i];
            if (text is null || !Rune.TryGetRuneAt(text, 0, out var rune) || rune.Utf16SequenceLength != text.Length)
                throw new ArgumentException($"Character {i} of the vocabulary ({Show(text)}) is not exactly one Unicode scalar value.", nameof(characters));
            if (!idOfScalar.TryAdd(rune.Value, FirstCharacterId + i))
                throw new ArgumentException($"Character {Show(text)} appears twice in the vocabulary (positions {idOfScalar[rune.Value] - FirstCharacterId} and {i}).", nameof(characters));
        }
        var vocabSize = FirstCharacterId + this.characters.Length + sentinelCount;
        Special = new SpecialTokens(Pad: 0, Bos: 1, Eos: 2, SentinelCount: sentinelCount, VocabSize: vocabSize);
    }

    public string Name => KindName;
    public int VocabSize => Special.VocabSize;
    public SpecialTokens Special { get; }

    /// <summary>The characters in id order (id of character i is 4 + i).</summary>
    public IReadOnlyList<string> Characters => characters;

    /// <summary>The characters of <paramref name="texts"/>, each once, in code-point order.</summary>
    public static CharTokenizer Build(IEnumerable<string> texts, int sentinelCount)
    {
        var scalars = new SortedSet<int>();
        foreach (var text in texts)
            foreach (var rune in text.EnumerateRunes())
                scalars.Add(rune.Value);
        return new CharTokenizer(scalars.Select(s => new Rune(s).ToString()).ToList(), sentinelCount);
    }

    /// <summary>The characters of every document's text in <paramref name="shardFiles"/>.</summary>
    public static CharTokenizer FromShards(IReadOnlyList<string> shardFiles, int sentinelCount) =>
        FromShards([.. shardFiles.Select(f => new LocalShardSource(f))], sentinelCount);

    /// <summary>The characters of every document's text in <paramref name="shards"/> (local files or blobs).</summary>
    public static CharTokenizer FromShards(IReadOnlyList<IShardSource> shards, int sentinelCount)
    {
        IEnumerable<string> Texts()
        {
            foreach (var shard in shards)
            {
                using var reader = shard.Open();
                foreach (var document in reader.ReadAll())
                    yield return document.Text;
            }
        }
        return Build(Texts(), sentinelCount);
    }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes())
            ids.Add(idOfScalar.GetValueOrDefault(rune.Value, UnknownId));
        return [.. ids];
    }

    /// <summary>Characters of the ids; specials are skipped, the unknown id reads as U+FFFD.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id is outside the '{Name}' vocabulary of {VocabSize}.");
            if (id == UnknownId) text.Append(Replacement);
            else if (id >= FirstCharacterId && id < FirstCharacterId + characters.Length) text.Append(characters[id - FirstCharacterId]);
        }
        return text.ToString();
    }

    private sealed record VocabularyFile(string Kind, int Sentinels, IReadOnlyList<string> Characters);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>The vocabulary file: <c>{"kind": "char", "sentinels": N, "characters": [...]}</c>.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(new VocabularyFile(KindName, Special.SentinelCount, characters), Json);

    /// <param name="source">Where the bytes came from, for error messages.</param>
    public static CharTokenizer FromJson(byte[] json, string source)
    {
        VocabularyFile? file;
        try
        {
            file = JsonSerializer.Deserialize<VocabularyFile>(json, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not a character vocabulary file: {e.Message}", e);
        }
        if (file is null || file.Kind != KindName || file.Characters is null)
            throw new InvalidDataException($"{source}: not a character vocabulary file (expected kind \"{KindName}\" and a list of characters).");
        try
        {
            return new CharTokenizer(file.Characters, file.Sentinels);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{source}: {e.Message}", e);
        }
    }

    private static string Show(string? text) =>
        text is null ? "null" : "\"" + string.Concat(text.Select(c => char.IsControl(c) || char.IsSurrogate(c) ? $"\\u{(int)c:x4}" : c.ToString())) + "\"";
}
