using Training.Shared.Storage;

namespace Training.Shared.Data;

/// <summary>
/// Where one shard's bytes come from: a local file or a blob in an <see cref="IBlobStore"/>. The example order depends
/// only on the shards' row groups, so the same shards give the same windows and cursors from either kind of source.
/// </summary>
public interface IShardSource
{
    /// <summary>What messages name: the absolute file path, or the store location and blob path.</summary>
    string Name { get; }

    /// <summary>A reader of the shard (the caller disposes it). Throws <see cref="FileNotFoundException"/> when the shard
    /// does not exist and <see cref="ShardFormatException"/> when it is not readable parquet.</summary>
    ShardReader Open();

    /// <summary>A hint that row group <paramref name="rowGroup"/> is read next: a source that fetches over the network
    /// starts fetching its bytes in the background. Never blocks, never throws.</summary>
    void Prefetch(int rowGroup)
    {
    }
}

/// <summary>A shard in a local file.</summary>
public sealed class LocalShardSource(string path) : IShardSource
{
    public string Name { get; } = Path.GetFullPath(path);
    public ShardReader Open() => new(Name);
    public override string ToString() => Name;
}

/// <summary>
/// A shard stored as a blob, read by ranged GETs through a shared <see cref="ShardBlockCache"/>. The first open pins the
/// blob's version (ETag); if the blob is replaced later in the run, the next read that needs bytes from the store, or the
/// next reopen of the shard, fails with a <see cref="ShardFormatException"/> saying the blob changed, never mixing the
/// versions' bytes.
/// </summary>
public sealed class BlobShardSource(IBlobStore store, string blobPath, ShardBlockCache cache) : IShardSource
{
    private readonly object _gate = new();
    private BlobBlocks? _blocks;
    private (long Offset, long Length)[] _rowGroups = [];

    public IBlobStore Store { get; } = store ?? throw new ArgumentNullException(nameof(store));
    public string BlobPath { get; } = blobPath ?? throw new ArgumentNullException(nameof(blobPath));
    public ShardBlockCache Cache { get; } = cache ?? throw new ArgumentNullException(nameof(cache));
    public string Name => BlobBlocks.NameOf(Store, BlobPath);

    /// <summary>The pinned version's blocks, once the source has been opened.</summary>
    public BlobBlocks? Blocks
    {
        get
        {
            lock (_gate) return _blocks;
        }
    }

    /// <summary>One source per blob path, sharing <paramref name="cache"/>.</summary>
    public static IReadOnlyList<IShardSource> For(IBlobStore store, IEnumerable<string> blobPaths, ShardBlockCache cache) =>
        [.. blobPaths.Select(p => new BlobShardSource(store, p, cache))];

    public ShardReader Open()
    {
        BlobBlocks? pinned;
        lock (_gate) pinned = _blocks;
        BlobBlocks blocks;
        if (pinned is not null)
        {
            // Reopened (the stream moved back to this shard): one HEAD says whether the pinned version is still there.
            SyncOverAsync.Run(() => pinned.VerifyUnchangedAsync());
            blocks = pinned;
        }
        else
        {
            lock (_gate) blocks = _blocks ??= SyncOverAsync.Run(() => BlobBlocks.OpenAsync(Store, BlobPath, Cache));
        }
        var stream = new BlobRangeStream(blocks);
        var reader = new ShardReader(stream, Name);
        lock (_gate)
            if (_rowGroups.Length != reader.RowGroupCount)
                _rowGroups = [.. Enumerable.Range(0, reader.RowGroupCount).Select(reader.RowGroupByteRange)];
        return reader;
    }

    public void Prefetch(int rowGroup)
    {
        BlobBlocks? blocks;
        (long Offset, long Length) range;
        lock (_gate)
        {
            blocks = _blocks;
            if (blocks is null || rowGroup < 0 || rowGroup >= _rowGroups.Length) return;
            range = _rowGroups[rowGroup];
        }

        blocks.Prefetch(range.Offset, range.Length);
    }

    public override string ToString() => Name;
}
