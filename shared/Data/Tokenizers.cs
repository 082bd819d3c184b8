namespace Training.Shared.Data;

/// <summary>Creates tokenizers by the name an experiment spec uses.</summary>
public static class Tokenizers
{
    // Add a kind here to make it available everywhere a spec names a tokenizer.
    private static readonly IReadOnlyDictionary<string, Func<int, ITokenizer>> Factories =
        new Dictionary<string, Func<int, ITokenizer>>(StringComparer.Ordinal)
        {
            [ByteTokenizer.KindName] = sentinels => new ByteTokenizer(sentinels),
            [Cl100kTokenizer.KindName] = sentinels => new Cl100kTokenizer(sentinels),
        };

    public static IReadOnlyCollection<string> Kinds => [.. Factories.Keys, CharTokenizer.KindName];

    /// <summary>A fixed-vocabulary tokenizer by name. The char tokenizer's vocabulary comes from data: build it with
    /// <see cref="TokenizerFactory.ForSpec"/> or <see cref="CharTokenizer.Build"/>.</summary>
    public static ITokenizer Create(string kind, int sentinels)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (kind == CharTokenizer.KindName)
            throw new ArgumentException(
                "The 'char' tokenizer's vocabulary is built from the training shards: use TokenizerFactory.ForSpec(spec) or CharTokenizer.FromShards(files, sentinels).",
                nameof(kind));
        if (!Factories.TryGetValue(kind, out var create))
            throw new ArgumentException(
                $"Unknown tokenizer '{kind}'. Allowed: {string.Join(", ", Factories.Keys.Select(k => $"\"{k}\""))}.", nameof(kind));
        return create(sentinels);
    }
}
