using System.Collections.Concurrent;
using Training.Shared.Storage;

namespace Training.Shared.Data;

/// <summary>
/// The tokenizer an experiment's <c>tokenizer:</c> section describes. byte and cl100k are fixed; char builds its
/// vocabulary from the training shards (<see cref="CharTokenizer"/>). A trial keeps its char vocabulary next to its
/// checkpoints, so resuming never depends on the shards staying the same.
/// </summary>
public static class TokenizerFactory
{
    /// <summary>The blob, under a trial's checkpoint prefix, that holds its character vocabulary.</summary>
    public const string VocabularyBlob = "tokenizer.json";

    // Scanning shards for their characters is the slow part; inspect and sweeps ask once per trial.
    private static readonly ConcurrentDictionary<string, CharTokenizer> Built = new();

    /// <summary>The tokenizer <paramref name="t"/> describes; a char vocabulary is built from <paramref name="trainFiles"/>
    /// (asked for only then: resolving them reads the file system or lists blob storage).</summary>
    public static ITokenizer ForSpec(TokenizerSpec t, Func<IReadOnlyList<IShardSource>> trainFiles) => t.Kind switch
    {
        TokenizerKind.Byte => new ByteTokenizer(t.Sentinels),
        TokenizerKind.Cl100k => new Cl100kTokenizer(t.Sentinels),
        TokenizerKind.Char => CharactersOf(trainFiles(), t.Sentinels),
        TokenizerKind.SentencePiece => new SentencePieceFileTokenizer(
            t.Path ?? throw new ArgumentException("tokenizer.kind sentencepiece needs tokenizer.path", nameof(t)), t.Sentinels, t.PadVocabTo),
        TokenizerKind.Bpe => new ByteLevelBpeFileTokenizer(
            t.Path ?? throw new ArgumentException("tokenizer.kind bpe needs tokenizer.path", nameof(t)), t.Sentinels, t.PadVocabTo),
        _ => throw new ArgumentOutOfRangeException(nameof(t), t.Kind, "unknown tokenizer.kind"),
    };

    /// <summary>
    /// The tokenizer of a trial. For char: the vocabulary saved at <c>{checkpointPrefix}/tokenizer.json</c> when it is
    /// there (a resumed trial); otherwise the one built from the training shards, saved there first (create-only, so
    /// ranks of one trial racing to save it all end up with the first one written).
    /// </summary>
    public static ITokenizer ForTrial(TokenizerSpec spec, Func<IReadOnlyList<IShardSource>> trainFiles, IBlobStore blobs, string checkpointPrefix)
    {
        if (spec.Kind != TokenizerKind.Char) return ForSpec(spec, trainFiles);
        var path = $"{checkpointPrefix.TrimEnd('/')}/{VocabularyBlob}";
        var source = $"{blobs.Location}/{path}";
        var saved = blobs.GetAsync(path).GetAwaiter().GetResult();
        if (saved is null)
        {
            var built = (CharTokenizer)ForSpec(spec, trainFiles);
            try
            {
                blobs.PutAsync(path, built.ToJson(), createOnly: true).GetAwaiter().GetResult();
                return built;
            }
            catch (BlobAlreadyExistsException)
            {
                saved = blobs.GetAsync(path).GetAwaiter().GetResult()
                        ?? throw new InvalidDataException($"{source} was reported to exist but cannot be read.");
            }
        }
        var tokenizer = CharTokenizer.FromJson(saved, source);
        if (tokenizer.Special.SentinelCount != spec.Sentinels)
            throw new InvalidDataException(
                $"{source} reserves {tokenizer.Special.SentinelCount} sentinels but the trial's tokenizer.sentinels is {spec.Sentinels}.");
        return tokenizer;
    }

    private static CharTokenizer CharactersOf(IReadOnlyList<IShardSource> files, int sentinels)
    {
        // Keyed by what the vocabulary depends on: the shards as they are now (a file's size and time, a blob's ETag)
        // and the sentinel count.
        var key = string.Join("\n", files.Select(VersionOf)) + $"\n{sentinels}";
        return Built.GetOrAdd(key, _ => CharTokenizer.FromShards(files, sentinels));
    }

    private static string VersionOf(IShardSource source)
    {
        switch (source)
        {
            case BlobShardSource blob:
                if (blob.Blocks is null) blob.Open().Dispose();
                return $"{blob.Name}|{blob.Blocks!.Version.ETag}";
            default:
                var info = new FileInfo(source.Name);
                return $"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}";
        }
    }
}
