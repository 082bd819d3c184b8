namespace Training.Shared.Data;

/// <summary>One aligned block of one version of a blob: bytes [Index * block size, ...) of the blob whose ETag is
/// <see cref="ETag"/>. A replaced blob has a new ETag, so its blocks never match the old version's.</summary>
public readonly record struct ShardBlockKey(string Store, string Path, string ETag, long Index);

/// <summary>What a <see cref="ShardBlockCache"/> has served so far. A foreground read is a read the trainer's thread
/// makes; it is a hit (bytes already here), a wait (a background prefetch of the block was still under way) or a
/// blocking fetch (it had to fetch the block itself).</summary>
public sealed record ShardCacheStatistics(
    long Hits,
    long Waits,
    long BlockingFetches,
    long PrefetchedBlocks,
    long Evictions,
    long Requests,
    long BytesFetched,
    long BlocksCached,
    long BytesCached,
    long BytesCachedOnDisk,
    TimeSpan ForegroundWait)
{
    /// <summary>Foreground reads that did not find their block ready.</summary>
    public long Stalls => Waits + BlockingFetches;
}

/// <summary>
/// A bounded cache of blob blocks keyed by (store, blob path, ETag, block index), shared by every shard a trainer
/// reads. Blocks live in memory up to <see cref="MemoryBudgetBytes"/>, least recently used evicted first; with a
/// folder, evicted blocks move to files there up to <see cref="DiskBudgetBytes"/> (again LRU), so a later epoch or a
/// trial resumed in another process on the same machine reads them locally. Only bytes verified against the blob's
/// ETag are ever stored. Thread-safe: background prefetches and the trainer's reads share it.
/// </summary>
public sealed class ShardBlockCache
{
    public const int DefaultBlockSize = 1 << 20;

    private readonly object _gate = new();
    private readonly Dictionary<ShardBlockKey, LinkedListNode<(ShardBlockKey Key, byte[] Bytes)>> _memory = [];
    private readonly LinkedList<(ShardBlockKey Key, byte[] Bytes)> _memoryOrder = new(); // first = most recent
    // The folder tier is indexed by file name (a hash of the key), so blocks an earlier process left there are found again.
    private readonly Dictionary<string, LinkedListNode<(string File, long Length)>> _disk = new(StringComparer.Ordinal);
    private readonly LinkedList<(string File, long Length)> _diskOrder = new();
    private readonly string? _folder;
    private long _memoryBytes, _diskBytes;
    private long _hits, _waits, _blockingFetches, _prefetched, _evictions, _requests, _bytesFetched, _waitTicks;

    /// <param name="memoryBudgetBytes">Bytes of blocks kept in memory; should hold at least the row group being read
    /// plus the row groups prefetched ahead of it, or prefetched blocks are evicted before they are used.</param>
    /// <param name="blockSize">Size of the aligned ranges fetched from the store (the last block of a blob is shorter).</param>
    /// <param name="folder">Optional local folder for blocks evicted from memory (created if missing; files left there by
    /// an earlier process are reused only after their name, which encodes store, path, ETag and index, matches).</param>
    /// <param name="diskBudgetBytes">Bytes of blocks kept in <paramref name="folder"/>.</param>
    public ShardBlockCache(long memoryBudgetBytes, int blockSize = DefaultBlockSize, string? folder = null, long diskBudgetBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(memoryBudgetBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(diskBudgetBytes);
        if (blockSize < 4096) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "Block size must be at least 4096 bytes.");
        if (folder is not null && diskBudgetBytes == 0)
            throw new ArgumentException("A cache folder needs a disk budget above zero.", nameof(diskBudgetBytes));
        MemoryBudgetBytes = memoryBudgetBytes;
        DiskBudgetBytes = folder is null ? 0 : diskBudgetBytes;
        BlockSize = blockSize;
        if (folder is not null)
        {
            _folder = Path.GetFullPath(folder);
            Directory.CreateDirectory(_folder);
            AdoptFolder();
        }
    }

    public long MemoryBudgetBytes { get; }
    public long DiskBudgetBytes { get; }
    public int BlockSize { get; }

    public ShardCacheStatistics Statistics
    {
        get
        {
            lock (_gate)
                return new ShardCacheStatistics(_hits, _waits, _blockingFetches, _prefetched, _evictions, _requests, _bytesFetched,
                    _memory.Count + _disk.Count, _memoryBytes, _diskBytes, TimeSpan.FromTicks(_waitTicks));
        }
    }

    /// <summary>The block if cached (memory first, then the folder, which moves it back to memory).</summary>
    public bool TryGet(ShardBlockKey key, out byte[] bytes)
    {
        lock (_gate)
        {
            if (_memory.TryGetValue(key, out var node))
            {
                _memoryOrder.Remove(node);
                _memoryOrder.AddFirst(node);
                bytes = node.Value.Bytes;
                return true;
            }

            if (_folder is not null && _disk.TryGetValue(FileFor(key), out var onDisk))
            {
                var file = onDisk.Value.File;
                _diskOrder.Remove(onDisk);
                _disk.Remove(file);
                _diskBytes -= onDisk.Value.Length;
                try
                {
                    bytes = File.ReadAllBytes(file);
                    File.Delete(file);
                }
                catch (IOException)
                {
                    bytes = [];
                    return false;
                }

                if (bytes.LongLength == onDisk.Value.Length)
                {
                    AddToMemory(key, bytes);
                    return true;
                }
            }
        }

        bytes = [];
        return false;
    }

    /// <summary>Stores verified bytes of a block; evicts least recently used blocks to stay within the budgets.</summary>
    public void Put(ShardBlockKey key, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        lock (_gate)
        {
            if (_memory.ContainsKey(key)) return;
            if (_folder is not null && _disk.Remove(FileFor(key), out var stale))
            {
                _diskOrder.Remove(stale);
                _diskBytes -= stale.Value.Length;
                TryDelete(stale.Value.File);
            }

            AddToMemory(key, bytes);
        }
    }

    internal void CountHit() => Interlocked.Increment(ref _hits);
    internal void CountPrefetched(long blocks) => Interlocked.Add(ref _prefetched, blocks);

    internal void CountRequest(long bytes)
    {
        Interlocked.Increment(ref _requests);
        Interlocked.Add(ref _bytesFetched, bytes);
    }

    internal void CountStall(bool waitedOnPrefetch, TimeSpan waited)
    {
        Interlocked.Increment(ref waitedOnPrefetch ? ref _waits : ref _blockingFetches);
        Interlocked.Add(ref _waitTicks, waited.Ticks);
    }

    // Callers hold _gate.
    private void AddToMemory(ShardBlockKey key, byte[] bytes)
    {
        if (bytes.LongLength > MemoryBudgetBytes)
        {
            AddToDisk(key, bytes);
            return;
        }

        _memory[key] = _memoryOrder.AddFirst((key, bytes));
        _memoryBytes += bytes.LongLength;
        while (_memoryBytes > MemoryBudgetBytes && _memoryOrder.Last is { } last)
        {
            _memoryOrder.RemoveLast();
            _memory.Remove(last.Value.Key);
            _memoryBytes -= last.Value.Bytes.LongLength;
            AddToDisk(last.Value.Key, last.Value.Bytes);
        }
    }

    private void AddToDisk(ShardBlockKey key, byte[] bytes)
    {
        if (_folder is null || bytes.LongLength > DiskBudgetBytes)
        {
            _evictions++;
            return;
        }

        var file = FileFor(key);
        var temporary = $"{file}.{Guid.NewGuid():N}.partial";
        try
        {
            File.WriteAllBytes(temporary, bytes);
            File.Move(temporary, file, overwrite: true);
        }
        catch (IOException)
        {
            TryDelete(temporary);
            _evictions++;
            return;
        }

        _disk[file] = _diskOrder.AddFirst((file, bytes.LongLength));
        _diskBytes += bytes.LongLength;
        TrimDisk();
    }

    private void TrimDisk()
    {
        while (_diskBytes > DiskBudgetBytes && _diskOrder.Last is { } last)
        {
            _diskOrder.RemoveLast();
            _disk.Remove(last.Value.File);
            _diskBytes -= last.Value.Length;
            TryDelete(last.Value.File);
            _evictions++;
        }
    }

    // File names encode the key: a hash of (store, path) then of the ETag, then the block index.
    private string FileFor(ShardBlockKey key) =>
        Path.Combine(_folder!, $"{BlobHash(key.Store, key.Path, key.ETag)}-{key.Index}.block");

    private static string BlobHash(string store, string path, string? etag)
    {
        static string Hash(string text) =>
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)))[..24];
        var blob = Hash($"{store}\n{path}");
        return etag is null ? blob : $"{blob}-{Hash(etag)}";
    }

    // Blocks an earlier process left in the folder count against the budget, oldest first in line for eviction.
    private void AdoptFolder()
    {
        foreach (var partial in Directory.EnumerateFiles(_folder!, "*.partial")) TryDelete(partial);
        foreach (var file in new DirectoryInfo(_folder!).EnumerateFiles("*.block").OrderBy(f => f.LastWriteTimeUtc))
        {
            _disk[file.FullName] = _diskOrder.AddFirst((file.FullName, file.Length));
            _diskBytes += file.Length;
        }

        TrimDisk();
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
    }
}
