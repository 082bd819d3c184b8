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
}
