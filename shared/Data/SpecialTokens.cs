namespace Training.Shared.Data;

/// <summary>
/// Reserved ids of a vocabulary. Sentinels (span-corruption placeholders) are counted down from the top of the
/// vocabulary, T5-style: sentinel 0 is <c>VocabSize - 1</c>.
/// </summary>
public sealed record SpecialTokens(int Pad, int Bos, int Eos, int SentinelCount, int VocabSize)
{
    /// <summary>Lowest sentinel id; every id at or above it is a sentinel.</summary>
    public int FirstSentinelId => VocabSize - SentinelCount;

    public int Sentinel(int i)
    {
        if (i < 0 || i >= SentinelCount)
            throw new ArgumentOutOfRangeException(nameof(i), i, $"Sentinel index must be in [0, {SentinelCount}).");
        return VocabSize - 1 - i;
    }

    public bool IsSentinel(int id) => id >= FirstSentinelId && id < VocabSize;

    public bool IsSpecial(int id) => id == Pad || id == Bos || id == Eos || IsSentinel(id);

    /// <summary>The ids of <paramref name="ids"/> that are text: below <paramref name="ordinaryCount"/> and not special.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id outside the vocabulary.</exception>
    public List<int> OrdinaryIds(IEnumerable<int> ids, int ordinaryCount, string tokenizer)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var ordinary = new List<int>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id is outside the '{tokenizer}' vocabulary of {VocabSize}.");
            if (id < ordinaryCount && !IsSpecial(id)) ordinary.Add(id);
        }
        return ordinary;
    }

    /// <summary>The layout of a tokenizer read from files with <paramref name="pieces"/> ids: its pad (or a new id after
    /// them), bos and eos; sentinels on top; the size rounded up to a multiple of <paramref name="padVocabTo"/>.</summary>
    public static SpecialTokens ForFiles(int pieces, int pad, int bos, int eos, int sentinels, int padVocabTo)
    {
        var needed = Math.Max(pieces, pad + 1) + sentinels;
        return new SpecialTokens(pad, bos, eos, sentinels, (needed + padVocabTo - 1) / padVocabTo * padVocabTo);
    }
}
