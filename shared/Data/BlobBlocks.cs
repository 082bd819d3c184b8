using System.Diagnostics;
using Training.Shared.Storage;

namespace Training.Shared.Data;

/// <summary>
/// The aligned blocks of one version of one blob, fetched by ranged GETs through a <see cref="ShardBlockCache"/>.
/// Every fetch is followed by a check that the blob still has the ETag it was opened with: a replaced (or deleted) blob
/// fails with a <see cref="ShardFormatException"/> naming it, and its bytes are never cached or mixed with the old
/// version's. Background prefetches and foreground reads of the same block share one fetch.
/// </summary>
public sealed class BlobBlocks
{
    /// <summary>Most blocks one ranged GET asks for (contiguous missing blocks are fetched together).</summary>
    public const int MaxBlocksPerRequest = 8;

    private readonly IBlobStore _store;
    private readonly ShardBlockCache _cache;
    private readonly Dictionary<long, Task<byte[]>> _inFlight = [];
    private Task _prefetchChain = Task.CompletedTask;
    private int _prefetchesPending;

    public BlobBlocks(IBlobStore store, string path, BlobProperties version, ShardBlockCache cache)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        BlobPath = path ?? throw new ArgumentNullException(nameof(path));
        Version = version ?? throw new ArgumentNullException(nameof(version));
        _cache = cache ?? throw new ArgumentNullException(nameof(cache));
        Name = NameOf(store, path);
    }

    /// <summary>What messages call the blob: the store's location and the blob path.</summary>
    public static string NameOf(IBlobStore store, string path) => $"{store.Location.TrimEnd('/')}/{path}";

    public string Name { get; }
    public string BlobPath { get; }
    public BlobProperties Version { get; }
    public long Size => Version.Size;
    public int BlockSize => _cache.BlockSize;
    public long BlockCount => (Size + BlockSize - 1) / BlockSize;

    /// <summary>True while a background prefetch is queued or running.</summary>
    public bool Prefetching => Volatile.Read(ref _prefetchesPending) > 0;

    /// <summary>Opens the current version of a blob; throws <see cref="FileNotFoundException"/> when it does not exist.</summary>
    public static async Task<BlobBlocks> OpenAsync(IBlobStore store, string path, ShardBlockCache cache, CancellationToken cancel = default)
    {
        var version = await store.GetPropertiesAsync(path, cancel)
                      ?? throw new FileNotFoundException($"Shard blob '{NameOf(store, path)}' does not exist.", path);
        return new BlobBlocks(store, path, version, cache);
    }

    private ShardBlockKey Key(long index) => new(_store.Location, BlobPath, Version.ETag, index);

    private int LengthOf(long index) => (int)Math.Min(BlockSize, Size - index * BlockSize);

    /// <summary>Block <paramref name="index"/> for a foreground read: from the cache, from a prefetch under way, or
    /// fetched now (the last two count as stalls in the cache's statistics).</summary>
    public async ValueTask<byte[]> GetAsync(long index, CancellationToken cancel = default)
    {
        if ((ulong)index >= (ulong)BlockCount)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Blob '{Name}' has {BlockCount} blocks.");
        if (_cache.TryGet(Key(index), out var cached))
        {
            _cache.CountHit();
            return cached;
        }

        Task<byte[]>? pending;
        lock (_inFlight) _inFlight.TryGetValue(index, out pending);
        var clock = Stopwatch.StartNew();
        if (pending is not null)
        {
            if (pending.IsCompletedSuccessfully)
            {
                _cache.CountHit();
                return pending.Result;
            }

            try
            {
                return await pending.WaitAsync(cancel);
            }
            finally
            {
                _cache.CountStall(waitedOnPrefetch: true, clock.Elapsed);
            }
        }

        try
        {
            var run = ClaimRun(index, 1);
            await FetchAsync(run, cancel);
            return await run.Blocks[0].Task;
        }
        finally
        {
            _cache.CountStall(waitedOnPrefetch: false, clock.Elapsed);
        }
    }

    /// <summary>Most prefetches of one blob queued or running at once; further requests are dropped (the reader is
    /// then ahead of the network and fetches what it needs itself).</summary>
    public const int MaxPendingPrefetches = 2;

    /// <summary>Queues a background fetch of every block overlapping bytes [offset, offset + length) that is neither
    /// cached nor being fetched. Prefetches of one blob run one after another, at most <see cref="MaxPendingPrefetches"/>
    /// at a time; failures surface when the block is read.</summary>
    public void Prefetch(long offset, long length)
    {
        if (length <= 0 || offset >= Size) return;
        var first = Math.Max(0, offset / BlockSize);
        var last = Math.Min(BlockCount - 1, (offset + length - 1) / BlockSize);
        if (Interlocked.Increment(ref _prefetchesPending) > MaxPendingPrefetches)
        {
            Interlocked.Decrement(ref _prefetchesPending);
            return;
        }

        lock (_inFlight)
            _prefetchChain = _prefetchChain.ContinueWith(async previous =>
            {
                try
                {
                    for (var block = first; block <= last;)
                    {
                        if (_cache.TryGet(Key(block), out _) || IsInFlight(block))
                        {
                            block++;
                            continue;
                        }

                        var count = 1;
                        while (count < MaxBlocksPerRequest && block + count <= last && !IsInFlight(block + count)
                               && !_cache.TryGet(Key(block + count), out _))
                            count++;
                        var run = ClaimRun(block, count);
                        await FetchAsync(run, CancellationToken.None);
                        _cache.CountPrefetched(run.Blocks.Count(b => b.Task.IsCompletedSuccessfully));
                        block += count;
                    }
                }
                catch (Exception)
                {
                    // Recorded on the blocks' tasks; a foreground read of them fetches again and reports the problem.
                }
                finally
                {
                    Interlocked.Decrement(ref _prefetchesPending);
                }
            }, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Waits for every prefetch queued so far (for tests and benchmarks that model a trainer's compute time).</summary>
    public Task PrefetchIdleAsync()
    {
        lock (_inFlight) return _prefetchChain;
    }

    private bool IsInFlight(long index)
    {
        lock (_inFlight) return _inFlight.ContainsKey(index);
    }

    private sealed record Run(long First, TaskCompletionSource<byte[]>[] Blocks);

    // Registers blocks [first, first + count) as in flight; blocks another fetch already claimed are fetched again
    // only in this run's request but resolved from whichever completes (both verify the ETag).
    private Run ClaimRun(long first, int count)
    {
        var blocks = new TaskCompletionSource<byte[]>[count];
        lock (_inFlight)
            for (var i = 0; i < count; i++)
            {
                blocks[i] = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                _inFlight.TryAdd(first + i, blocks[i].Task);
            }

        return new Run(first, blocks);
    }

    private async Task FetchAsync(Run run, CancellationToken cancel)
    {
        try
        {
            var offset = run.First * BlockSize;
            var length = 0;
            for (var i = 0; i < run.Blocks.Length; i++) length += LengthOf(run.First + i);
            byte[] bytes;
            try
            {
                bytes = await _store.GetRangeAsync(BlobPath, offset, length, cancel);
            }
            catch (FileNotFoundException e)
            {
                throw Changed("was deleted", e);
            }

            _cache.CountRequest(bytes.LongLength);
            // The GET above read whichever version was current then; if the ETag is still the one this reader opened,
            // that was this version (ETags never come back), so the bytes are safe to use and to cache.
            var now = await _store.GetPropertiesAsync(BlobPath, cancel);
            _cache.CountRequest(0);
            if (now is null) throw Changed("was deleted", null);
            if (now.ETag != Version.ETag) throw Changed($"now has ETag '{now.ETag}' and {now.Size} bytes", null);
            if (bytes.Length != length)
                throw new ShardFormatException(Name,
                    $"a ranged read of bytes {offset}..{offset + length} returned {bytes.Length} bytes from a blob of {Size} bytes");

            var at = 0;
            for (var i = 0; i < run.Blocks.Length; i++)
            {
                var block = bytes.AsSpan(at, LengthOf(run.First + i)).ToArray();
                at += block.Length;
                _cache.Put(Key(run.First + i), block);
                run.Blocks[i].TrySetResult(block);
            }
        }
        catch (Exception e)
        {
            foreach (var block in run.Blocks)
            {
                block.TrySetException(e);
                _ = block.Task.Exception; // observed: whoever reads the block gets it; nobody else needs to
            }

            throw;
        }
        finally
        {
            lock (_inFlight)
                for (var i = 0; i < run.Blocks.Length; i++)
                    if (_inFlight.TryGetValue(run.First + i, out var task) && task == run.Blocks[i].Task)
                        _inFlight.Remove(run.First + i);
        }
    }

    /// <summary>Throws the "blob changed" <see cref="ShardFormatException"/> when the blob no longer has the version this
    /// reader opened. Cached blocks never touch the store, so a reader checks this each time it reopens the shard: a
    /// replacement is reported even when every byte it needs is already cached.</summary>
    public async Task VerifyUnchangedAsync(CancellationToken cancel = default)
    {
        var now = await _store.GetPropertiesAsync(BlobPath, cancel);
        _cache.CountRequest(0);
        if (now is null) throw Changed("was deleted", null);
        if (now.ETag != Version.ETag) throw Changed($"now has ETag '{now.ETag}' and {now.Size} bytes", null);
    }

    private ShardFormatException Changed(string how, Exception? inner) =>
        new(Name,
            $"the blob changed while it was being read: it was opened with ETag '{Version.ETag}' ({Size} bytes) and {how}; " +
            "a shard must not be replaced while a run reads it (restart the trial to read the new version)",
            inner: inner);
}
