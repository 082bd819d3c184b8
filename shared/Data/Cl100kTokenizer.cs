using System.IO.Compression;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Training.Shared.Data;

/// <summary>
/// OpenAI's cl100k_base BPE (GPT-4). Ordinary tokens keep their ids 0..100255; pad, bos and eos follow at
/// 100256..100258; sentinels sit at the top; the vocabulary is padded up to a multiple of 128 (unused ids in between).
/// Text that happens to contain strings such as <c>&lt;|endoftext|&gt;</c> is encoded as ordinary text, so
/// documents can never inject special ids.
/// </summary>
public sealed class Cl100kTokenizer : ITokenizer
{
    public const string KindName = "cl100k";
    public const int OrdinaryTokenCount = 100_256;
    private const int VocabMultiple = 128;

    // The cl100k_base pre-tokenizer pattern (as Microsoft.ML.Tokenizers spells it for .NET, with atomic groups).
    private const string PreTokenizerPattern =
        @"'(?i:[sdmt]|ll|ve|re)|(?>[^\r\n\p{L}\p{N}]?)(?>\p{L}+)|(?>\p{N}{1,3})| ?(?>[^\s\p{L}\p{N}]+)(?>[\r\n]*)|(?>\s+)$|\s*[\r\n]|\s+(?!\S)|\s";

    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.Cl100kBase";
    private const string DataResource = "cl100k_base.tiktoken.deflate";

    // Loading the 100k-rank table takes a few hundred ms; every instance shares one (the BPE is thread-safe).
    private static readonly Lazy<TiktokenTokenizer> Bpe = new(LoadWithoutSpecialTokens, LazyThreadSafetyMode.ExecutionAndPublication);

    public Cl100kTokenizer(int sentinelCount)
    {
        if (sentinelCount < 0)
            throw new ArgumentOutOfRangeException(nameof(sentinelCount), sentinelCount, "Sentinel count cannot be negative.");
        const int pad = OrdinaryTokenCount, bos = OrdinaryTokenCount + 1, eos = OrdinaryTokenCount + 2;
        var needed = eos + 1 + sentinelCount;
        var vocabSize = (needed + VocabMultiple - 1) / VocabMultiple * VocabMultiple;
        Special = new SpecialTokens(pad, bos, eos, sentinelCount, vocabSize);
    }

    public string Name => KindName;
    public int VocabSize => Special.VocabSize;
    public SpecialTokens Special { get; }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return [];
        var ids = Bpe.Value.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
        return ids as int[] ?? [.. ids];
    }

    /// <summary>Decodes ordinary tokens; specials and the unused padding ids between them are skipped.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var ordinary = Special.OrdinaryIds(ids, OrdinaryTokenCount, Name);
        return ordinary.Count == 0 ? "" : Bpe.Value.Decode(ordinary);
    }

    private static TiktokenTokenizer LoadWithoutSpecialTokens()
    {
        // The data package embeds the rank file; building the tokenizer ourselves (instead of CreateForModel) leaves out
        // tiktoken's own special tokens, whose ids (100257, ...) would collide with ours.
        var assembly = Assembly.Load(DataAssembly);
        using var compressed = assembly.GetManifestResourceStream(DataResource)
                               ?? throw new InvalidOperationException($"Resource '{DataResource}' is missing from {DataAssembly}.");
        using var ranks = new DeflateStream(compressed, CompressionMode.Decompress);
        var preTokenizer = new RegexPreTokenizer(new Regex(PreTokenizerPattern, RegexOptions.Compiled), specialTokens: null);
        return TiktokenTokenizer.Create(ranks, preTokenizer, normalizer: null, specialTokens: null);
    }
}
