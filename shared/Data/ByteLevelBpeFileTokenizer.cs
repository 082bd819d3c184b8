using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Training.Shared.Data;

/// <summary>
/// A Hugging Face byte-level BPE tokenizer from its <c>vocab.json</c> and <c>merges.txt</c> (GPT-2's format, also
/// SmolLM's and other Llama-architecture models'), read through Microsoft.ML.Tokenizers with GPT-2's pre-tokenization.
/// The vocabulary keeps its ids. Eos is its end-of-text token, bos its begin-of-text token or pad when it has none,
/// pad its pad token or a new id after the vocabulary; sentinels sit at the top, and the size is rounded up to a
/// multiple of <c>padVocabTo</c>. Text that contains a special token's spelling is encoded as ordinary text.
/// </summary>
public sealed class ByteLevelBpeFileTokenizer : ITokenizer
{
    public const string KindName = "bpe";
    public const string VocabularyFile = "vocab.json";
    public const string MergesFile = "merges.txt";

    private static readonly string[] EosNames = ["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"];
    private static readonly string[] BosNames = ["<s>", "<|begin_of_text|>", "<|startoftext|>", "<|im_start|>"];
    private static readonly string[] PadNames = ["<pad>", "<|pad|>", "<|padding|>", "[PAD]"];

    private readonly CodeGenTokenizer _model;
    private readonly int _pieces;

    /// <param name="folder">The folder that holds vocab.json and merges.txt.</param>
    public ByteLevelBpeFileTokenizer(string folder, int sentinelCount, int padVocabTo = 1)
    {
        if (sentinelCount < 0) throw new ArgumentOutOfRangeException(nameof(sentinelCount), sentinelCount, "Sentinel count cannot be negative.");
        if (padVocabTo < 1) throw new ArgumentOutOfRangeException(nameof(padVocabTo), padVocabTo, "pad_vocab_to must be at least 1.");
        var (vocabulary, merges) = (System.IO.Path.Combine(folder, VocabularyFile), System.IO.Path.Combine(folder, MergesFile));
        foreach (var file in new[] { vocabulary, merges })
            if (!File.Exists(file))
                throw new FileNotFoundException($"tokenizer.path {folder}: no {System.IO.Path.GetFileName(file)} (a bpe tokenizer is a folder with {VocabularyFile} and {MergesFile})", file);
        try
        {
            using var vocabularyStream = File.OpenRead(vocabulary);
            using var mergesStream = File.OpenRead(merges);
            _model = CodeGenTokenizer.Create(vocabularyStream, mergesStream, addPrefixSpace: false, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or InvalidOperationException or KeyNotFoundException)
        {
            throw new InvalidDataException($"tokenizer.path {folder}: {VocabularyFile} / {MergesFile} are not a BPE tokenizer ({e.GetType().Name}: {e.Message})", e);
        }
        Path = folder;
        var ids = _model.Vocabulary;
        if (ids.Count == 0) throw new InvalidDataException($"tokenizer.path {folder}: {VocabularyFile} is empty");
        _pieces = ids.Values.Max() + 1;
        int? Find(string[] names) => names.Select(n => ids.TryGetValue(n, out var id) ? id : (int?)null).FirstOrDefault(id => id is not null);
        var eos = Find(EosNames) ?? throw new InvalidDataException(
            $"tokenizer.path {folder}: {VocabularyFile} has no end-of-text token (one of {string.Join(", ", EosNames)})");
        var pad = Find(PadNames) ?? _pieces;
        var bos = Find(BosNames) ?? pad;
        var needed = Math.Max(_pieces, pad + 1) + sentinelCount;
        Special = new SpecialTokens(pad, bos, eos, sentinelCount, (needed + padVocabTo - 1) / padVocabTo * padVocabTo);
    }

    /// <summary>The folder of vocab.json and merges.txt.</summary>
    public string Path { get; }

    /// <summary>The ids vocab.json defines (0 .. PieceCount - 1).</summary>
    public int PieceCount => _pieces;

    public string Name => KindName;
    public int VocabSize => Special.VocabSize;
    public SpecialTokens Special { get; }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return [];
        var ids = _model.EncodeToIds(text, addPrefixSpace: false, addBeginningOfSentence: false, addEndOfSentence: false);
        return ids as int[] ?? [.. ids];
    }

    /// <summary>Decodes the vocabulary's tokens; specials, sentinels and the padding ids are skipped.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var pieces = new List<int>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id is outside the '{Name}' vocabulary of {VocabSize}.");
            if (id < _pieces && !Special.IsSpecial(id)) pieces.Add(id);
        }
        return pieces.Count == 0 ? "" : _model.Decode(pieces, hasPrefixSpace: false, considerSpecialTokens: false) ?? "";
    }
}
