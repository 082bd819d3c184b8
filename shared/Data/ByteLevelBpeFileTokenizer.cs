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
public sealed class ByteLevelBpeFileTokenizer : FileTokenizer
{
    public const string KindName = "bpe";
    public const string VocabularyFile = "vocab.json";
    public const string MergesFile = "merges.txt";

    private static readonly string[] EosNames = ["</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"];
    private static readonly string[] BosNames = ["<s>", "<|begin_of_text|>", "<|startoftext|>", "<|im_start|>"];
    private static readonly string[] PadNames = ["<pad>", "<|pad|>", "<|padding|>", "[PAD]"];

    private readonly CodeGenTokenizer _model;

    /// <param name="folder">The folder that holds vocab.json and merges.txt.</param>
    public ByteLevelBpeFileTokenizer(string folder, int sentinelCount, int padVocabTo = 1) : this(folder, Load(folder, sentinelCount, padVocabTo))
    {
    }

    private ByteLevelBpeFileTokenizer(string folder, (CodeGenTokenizer Model, int Pieces, SpecialTokens Special) loaded)
        : base(folder, loaded.Pieces, loaded.Special) => _model = loaded.Model;

    public override string Name => KindName;

    protected override IReadOnlyList<int> EncodeText(string text) =>
        _model.EncodeToIds(text, addPrefixSpace: false, addBeginningOfSentence: false, addEndOfSentence: false);

    protected override string DecodePieces(IReadOnlyList<int> pieces) =>
        _model.Decode(pieces, hasPrefixSpace: false, considerSpecialTokens: false) ?? "";

    private static (CodeGenTokenizer, int, SpecialTokens) Load(string folder, int sentinelCount, int padVocabTo)
    {
        CheckCounts(sentinelCount, padVocabTo);
        var (vocabulary, merges) = (System.IO.Path.Combine(folder, VocabularyFile), System.IO.Path.Combine(folder, MergesFile));
        foreach (var file in new[] { vocabulary, merges })
            if (!File.Exists(file))
                throw new FileNotFoundException($"tokenizer.path {folder}: no {System.IO.Path.GetFileName(file)} (a bpe tokenizer is a folder with {VocabularyFile} and {MergesFile})", file);
        CodeGenTokenizer model;
        try
        {
            using var vocabularyStream = File.OpenRead(vocabulary);
            using var mergesStream = File.OpenRead(merges);
            model = CodeGenTokenizer.Create(vocabularyStream, mergesStream, addPrefixSpace: false, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException or InvalidOperationException or KeyNotFoundException)
        {
            throw new InvalidDataException($"tokenizer.path {folder}: {VocabularyFile} / {MergesFile} are not a BPE tokenizer ({e.GetType().Name}: {e.Message})", e);
        }
        var ids = model.Vocabulary;
        if (ids.Count == 0) throw new InvalidDataException($"tokenizer.path {folder}: {VocabularyFile} is empty");
        var pieces = ids.Values.Max() + 1;
        int? Find(string[] names) => names.Select(n => ids.TryGetValue(n, out var id) ? id : (int?)null).FirstOrDefault(id => id is not null);
        var eos = Find(EosNames) ?? throw new InvalidDataException(
            $"tokenizer.path {folder}: {VocabularyFile} has no end-of-text token (one of {string.Join(", ", EosNames)})");
        var pad = Find(PadNames) ?? pieces;
        return (model, pieces, SpecialTokens.ForFiles(pieces, pad, Find(BosNames) ?? pad, eos, sentinelCount, padVocabTo));
    }
}
