using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Training.Shared.Storage;

namespace Training.Shared.Data;

/// <summary>
/// Turns a split's shard patterns into shard sources: a plain path (or <c>file://</c> URI) is resolved on this machine's
/// file system (see <see cref="ShardFiles.Resolve"/>); an <c>azure://ACCOUNT/container/pattern</c> is listed in that
/// container (see <see cref="ShardFiles.ResolveBlobsAsync"/>) and read by range through a block cache shared by every
/// trial of the process. Credentials come from this process's environment (<see cref="BlobStores"/>), never from the
/// pattern. The order is the ordinal order of the sources' names, so the same shards give the same example order
/// wherever they are stored.
/// </summary>
public sealed partial class ShardSources(Func<BlobLocation, IBlobStore> openStore, ShardBlockCache cache)
{
    /// <summary>Memory for cached shard blocks of the process-wide instance: a few row groups of every open shard.</summary>
    public const long DefaultCacheBytes = 256L << 20;

    private static readonly Lazy<ShardSources> Shared = new(() =>
        new ShardSources(location => BlobStores.Open(location), new ShardBlockCache(DefaultCacheBytes)));

    // One store per container: its HTTP pipeline and retry budget serve every pattern that names the container.
    private readonly ConcurrentDictionary<BlobLocation, IBlobStore> _stores = new();

    /// <summary>The process-wide instance: stores opened with this process's credentials, one shared cache.</summary>
    public static ShardSources Default => Shared.Value;

    public ShardBlockCache Cache { get; } = cache ?? throw new ArgumentNullException(nameof(cache));

    /// <summary>True for a pattern that names shards in blob storage rather than on this machine.</summary>
    public static bool IsBlobPattern(string pattern) => pattern.TrimStart().StartsWith("azure://", StringComparison.OrdinalIgnoreCase);

    /// <summary>True for a pattern given as a URI (<c>scheme://</c>), which is never joined to the experiment file's
    /// folder: azure:// and file:// are read, any other scheme is an error that names it.</summary>
    public static bool IsStorageUri(string pattern) => UriScheme().IsMatch(pattern.TrimStart());

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9+.-]+://")]
    private static partial Regex UriScheme();

    /// <summary>
    /// The shards <paramref name="patterns"/> name; relative local patterns are resolved against
    /// <paramref name="baseDirectory"/>. Throws <see cref="FileNotFoundException"/> naming a pattern that matches nothing
    /// and <see cref="ArgumentException"/> for a malformed URI or missing credentials.
    /// </summary>
    public IReadOnlyList<IShardSource> Resolve(IReadOnlyList<string> patterns, string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        if (patterns.Count == 0) return [];
        var local = patterns.Where(p => !IsBlobPattern(p)).Select(LocalPath).ToList();
        var sources = new List<IShardSource>();
        if (local.Count > 0) sources.AddRange(ShardFiles.Resolve(local, baseDirectory).Select(f => new LocalShardSource(f)));
        foreach (var byContainer in patterns.Where(IsBlobPattern).Select(Split).GroupBy(p => p.Container))
        {
            var store = _stores.GetOrAdd(byContainer.Key, openStore);
            var blobs = SyncOverAsync.Run(() => ShardFiles.ResolveBlobsAsync(store, byContainer.Select(p => p.BlobPattern)));
            sources.AddRange(BlobShardSource.For(store, blobs, Cache));
        }
        return [.. sources.DistinctBy(s => s.Name).OrderBy(s => s.Name, StringComparer.Ordinal)];
    }

    /// <summary>What is wrong with a storage URI given as a shard pattern, as a sentence; null when it is well formed.
    /// Never quotes a credential (see <see cref="BlobLocation.Parse"/>).</summary>
    public static string? Problem(string pattern)
    {
        try
        {
            if (IsBlobPattern(pattern)) Split(pattern);
            else BlobLocation.Parse(pattern);
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }

    /// <summary>The container a blob pattern names and the pattern inside it (which may hold wildcards).</summary>
    public static (BlobLocation Container, string BlobPattern) Split(string pattern)
    {
        var location = BlobLocation.Parse(pattern);
        if (location.Prefix.Length == 0)
            throw new ArgumentException($"'{location}' names a container but no shards in it: expected azure://ACCOUNT/container/path/to/shards");
        return (BlobLocation.Parse($"azure://{location.Account}/{location.Container}"), location.Prefix);
    }

    private static string LocalPath(string pattern) => IsStorageUri(pattern) ? BlobLocation.Parse(pattern).Folder : pattern;
}
