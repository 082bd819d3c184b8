namespace Training.Shared.Data;

/// <summary>
/// A tokenizer read from files (sentencepiece, bpe): the files' ids are kept, the specials are chosen from them
/// (<see cref="SpecialTokens.ForFiles"/>), sentinels sit on top, and the ids between the files' and the sentinels are
/// never produced.
/// </summary>
public abstract class FileTokenizer(string path, int pieceCount, SpecialTokens special) : ITokenizer
{
    /// <summary>The file or folder read.</summary>
    public string Path { get; } = path;

    /// <summary>How many ids the files define (0 .. PieceCount - 1).</summary>
    public int PieceCount { get; } = pieceCount;

    public abstract string Name { get; }
    public int VocabSize => Special.VocabSize;
    public SpecialTokens Special { get; } = special;

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return [];
        var ids = EncodeText(text);
        return ids as int[] ?? [.. ids];
    }

    /// <summary>Decodes the files' tokens; specials, sentinels and the padding ids are skipped.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var pieces = Special.OrdinaryIds(ids, PieceCount, Name);
        return pieces.Count == 0 ? "" : DecodePieces(pieces);
    }

    /// <summary>The files' ids for non-empty text, no special tokens added.</summary>
    protected abstract IReadOnlyList<int> EncodeText(string text);

    /// <summary>Text of ordinary ids (none special, all below PieceCount).</summary>
    protected abstract string DecodePieces(IReadOnlyList<int> pieces);

    protected static void CheckCounts(int sentinelCount, int padVocabTo)
    {
        if (sentinelCount < 0) throw new ArgumentOutOfRangeException(nameof(sentinelCount), sentinelCount, "Sentinel count cannot be negative.");
        if (padVocabTo < 1) throw new ArgumentOutOfRangeException(nameof(padVocabTo), padVocabTo, "pad_vocab_to must be at least 1.");
    }
}
