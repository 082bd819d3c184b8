using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Storage;

namespace Training.Tests.Data;

/// <summary>Shards read from a blob store by range: real parquet files written by <see cref="ShardWriter"/>, a real
/// <see cref="LocalFolderBlobStore"/>, seen through a wrapper that counts (and can delay) its requests.</summary>
public class BlobShardTests
{
    private const int BlockSize = 4096;
    private const int RowGroupSize = 6;
    private const string Prefix = "fineweb/train/";
    private TempFolder _temp = null!;
    private LocalFolderBlobStore _local = null!;
    private InstrumentedBlobStore _store = null!;
    private List<string> _files = null!;
    private List<string> _blobs = null!;
    private ByteTokenizer _tokenizer = null!;

    [SetUp]
    public async Task SetUp()
    {
        _temp = new TempFolder();
        _tokenizer = new ByteTokenizer(sentinelCount: 4);
        _local = new LocalFolderBlobStore(_temp.File("store"));
        _store = new InstrumentedBlobStore(_local);
        _files = [];
        _blobs = [];
        // Three shards of 20, 13 and 9 documents of 600-3,600 random letters (little for snappy to squeeze), so each row
        // group spans several 4 KiB blocks: 4 + 3 + 2 = 9 units.
        var documents = Documents(42, seed: 3);
        var start = 0;
        foreach (var count in new[] { 20, 13, 9 })
        {
            var name = $"shard-{_files.Count:D5}.parquet";
            var path = _temp.File("local", name);
            ShardWriter.WriteFile(path, documents.Skip(start).Take(count), RowGroupSize);
            _files.Add(path);
            _blobs.Add(Prefix + name);
            await _local.PutAsync(Prefix + name, await File.ReadAllBytesAsync(path));
            start += count;
        }
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private static List<FineWebDocument> Documents(int count, int seed)
    {
        var random = new Random(seed);
        var documents = new List<FineWebDocument>();
        for (var i = 0; i < count; i++)
        {
            var letters = new char[600 + random.Next(3000)];
            for (var c = 0; c < letters.Length; c++) letters[c] = random.Next(7) == 0 ? ' ' : (char)('a' + random.Next(26));
            documents.Add(new FineWebDocument(new string(letters), $"id-{seed}-{i}", "CC-MAIN-2024-10", $"https://example.org/{i}",
                $"s3://bucket/{i}.warc.gz", "en", 0.9, letters.Length / 4, 3.1, 3));
        }

        return documents;
    }

    private ShardBlockCache NewCache(long budget = 64L << 20) => new(budget, BlockSize);

    private IReadOnlyList<IShardSource> BlobSources(ShardBlockCache cache) => BlobShardSource.For(_store, _blobs, cache);

    private static List<(int[] Window, DataCursor Cursor)> Take(PackedExampleStream stream, int count)
    {
        var taken = new List<(int[], DataCursor)>();
        for (var i = 0; i < count; i++) taken.Add((stream.Next(), stream.Cursor));
        return taken;
    }

    [Test]
    public async Task Read_RandomSeeksAndLengths_MatchTheFileBytes()
    {
        var expected = await File.ReadAllBytesAsync(_files[0]);
        var cache = NewCache();
        using var stream = new BlobRangeStream(await BlobBlocks.OpenAsync(_store, _blobs[0], cache));
        var random = new Random(7);

        Assert.That(stream.Length, Is.EqualTo(expected.Length));
        for (var i = 0; i < 300; i++)
        {
            var length = random.Next(1, 3 * BlockSize);
            long target = random.Next(expected.Length);
            switch (random.Next(3))
            {
                case 0:
                    stream.Seek(target, SeekOrigin.Begin);
                    break;
                case 1:
                    stream.Seek(target - stream.Position, SeekOrigin.Current);
                    break;
                default:
                    stream.Seek(target - expected.Length, SeekOrigin.End);
                    break;
            }

            var buffer = new byte[length];
            var read = i % 2 == 0
                ? stream.ReadAtLeast(buffer, length, throwOnEndOfStream: false)
                : await stream.ReadAtLeastAsync(buffer, length, throwOnEndOfStream: false);

            var wanted = (int)Math.Min(length, expected.Length - target);
            Assert.That(read, Is.EqualTo(wanted), $"read {i} at {target}");
            Assert.That(buffer.AsSpan(0, read).SequenceEqual(expected.AsSpan((int)target, read)), Is.True, $"bytes of read {i} at {target}");
            Assert.That(stream.Position, Is.EqualTo(target + read));
        }

        stream.Seek(0, SeekOrigin.End);
        Assert.That(stream.Read(new byte[10]), Is.Zero, "reading at the end returns nothing");
        Assert.That(_store.WholeGets, Is.Zero, "never a whole-blob GET");
        Assert.That(cache.Statistics.Hits, Is.GreaterThan(0), "repeated blocks come from the cache");
        Assert.That(_store.RangeGets, Is.LessThanOrEqualTo((expected.Length + BlockSize - 1) / BlockSize),
            "each block is fetched at most once");
    }

    [Test]
    public void Open_BlobShard_ReadsOnlyTheHeadAndFooterBlocks()
    {
        var size = new FileInfo(_files[0]).Length;
        var cache = NewCache();
        var source = new BlobShardSource(_store, _blobs[0], cache);

        using (var reader = source.Open())
        {
            Assert.That(reader.RowGroupCount, Is.EqualTo(4));
            Assert.That(reader.RowCount, Is.EqualTo(20));
        }

        Assert.That(size, Is.GreaterThan(8 * BlockSize), "the shard is many blocks long");
        Assert.That(_store.WholeGets, Is.Zero);
        Assert.That(_store.RangeBytes, Is.LessThan(size / 2), "open reads the magic and the footer, not the row groups");
    }

    [Test]
    public void ReadRowGroup_FromBlob_SameDocumentsAsTheLocalFile_AndFetchesOnlyThatRowGroup()
    {
        var cache = NewCache();
        var source = new BlobShardSource(_store, _blobs[0], cache);
        using var local = new ShardReader(_files[0]);
        using var remote = source.Open();
        var afterOpen = _store.RangeBytes;

        var documents = remote.ReadRowGroup(2);
        var (offset, length) = remote.RowGroupByteRange(2);

        Assert.That(documents, Is.EqualTo(local.ReadRowGroup(2)));
        Assert.That(remote.FilePath, Is.EqualTo($"{_local.Location}/{_blobs[0]}"), "messages name the store and the blob");
        var fetched = _store.RangeBytes - afterOpen;
        Assert.That(fetched, Is.LessThanOrEqualTo(length + 2 * BlockSize), "one row group's chunks, rounded out to blocks");
        Assert.That(fetched, Is.GreaterThanOrEqualTo(length - 2 * BlockSize), $"the row group at {offset} of {length} bytes");
    }

    [Test]
    public void Next_BlobSourcesVsLocalFiles_SameWindowsAndCursors()
    {
        const int window = 200;
        var cache = NewCache();
        using var local = new PackedExampleStream(_files, _tokenizer, window, seed: 9, shuffle: true);
        using var remote = new PackedExampleStream(BlobSources(cache), _tokenizer, window, seed: 9, shuffle: true);
        var totalTokens = Documents(42, seed: 3).Sum(d => _tokenizer.Encode(d.Text).Length + 1);
        var count = 2 * totalTokens / window + 5; // past the end of the second epoch

        var fromFiles = Take(local, count);
        var fromBlobs = Take(remote, count);

        Assert.That(remote.UnitCount, Is.EqualTo(local.UnitCount).And.EqualTo(9));
        Assert.That(fromBlobs.Select(t => t.Cursor), Is.EqualTo(fromFiles.Select(t => t.Cursor)));
        for (var i = 0; i < count; i++)
            Assert.That(fromBlobs[i].Window, Is.EqualTo(fromFiles[i].Window), $"window {i}");
        Assert.That(fromFiles[^1].Cursor.Epoch, Is.EqualTo(2), "the comparison crossed two epoch boundaries");
    }

    [Test]
    public void Next_ResumedFromCursorOnBlobs_ContinuesLikeTheUninterruptedLocalStream()
    {
        const int window = 128;
        using var local = new PackedExampleStream(_files, _tokenizer, window, seed: 4, shuffle: true);
        var uninterrupted = Take(local, 400);
        var cursor = uninterrupted[137].Cursor;

        using var resumed = new PackedExampleStream(BlobSources(NewCache()), _tokenizer, window, seed: 4, shuffle: true, resumeFrom: cursor);
        var continuation = Take(resumed, 400 - 138);

        for (var i = 0; i < continuation.Count; i++)
        {
            Assert.That(continuation[i].Window, Is.EqualTo(uninterrupted[138 + i].Window), $"window {138 + i}");
            Assert.That(continuation[i].Cursor, Is.EqualTo(uninterrupted[138 + i].Cursor), $"cursor after window {138 + i}");
        }
    }

    [Test]
    public void Next_SecondEpochFromCache_FetchesNothing()
    {
        const int window = 256;
        var cache = NewCache();
        using var stream = new PackedExampleStream(BlobSources(cache), _tokenizer, window, seed: 2, shuffle: true);
        while (stream.Cursor.Epoch == 0) stream.Next();
        var requestsAfterEpoch = _store.RangeGets;
        var hitsAfterEpoch = cache.Statistics.Hits;

        while (stream.Cursor.Epoch == 1) stream.Next();

        Assert.That(_store.RangeGets, Is.EqualTo(requestsAfterEpoch), "the whole data set fits the budget: epoch 2 is served locally");
        Assert.That(cache.Statistics.Hits, Is.GreaterThan(hitsAfterEpoch));
        Assert.That(cache.Statistics.BytesCached, Is.EqualTo(_files.Sum(f => new FileInfo(f).Length)),
            "every byte of every shard is cached exactly once");
    }

    [Test]
    public async Task Cache_SmallBudget_StaysWithinItAndEvictsLeastRecentlyUsed()
    {
        const long budget = 5 * BlockSize;
        var cache = new ShardBlockCache(budget, BlockSize);
        var blocks = await BlobBlocks.OpenAsync(_store, _blobs[0], cache);
        Assert.That(blocks.BlockCount, Is.GreaterThan(8));

        for (long i = 0; i < blocks.BlockCount; i++)
        {
            await blocks.GetAsync(i);
            Assert.That(cache.Statistics.BytesCached, Is.LessThanOrEqualTo(budget), $"after block {i}");
        }

        var requests = _store.RangeGets;
        await blocks.GetAsync(blocks.BlockCount - 1); // most recent: still cached
        await blocks.GetAsync(blocks.BlockCount - 3);
        Assert.That(_store.RangeGets, Is.EqualTo(requests), "recently used blocks are hits");
        await blocks.GetAsync(0); // least recently used: evicted long ago
        Assert.That(_store.RangeGets, Is.EqualTo(requests + 1), "the oldest block was evicted and is fetched again");
        Assert.That(cache.Statistics.Evictions, Is.GreaterThanOrEqualTo(blocks.BlockCount - 5));
        Assert.That(cache.Statistics.BlocksCached, Is.EqualTo(5));
    }

    [Test]
    public async Task Cache_Folder_KeepsEvictedBlocksForANewProcessWithinItsBudget()
    {
        var folder = _temp.File("cache");
        var first = new ShardBlockCache(2 * BlockSize, BlockSize, folder, diskBudgetBytes: 64L << 20);
        var blocks = await BlobBlocks.OpenAsync(_store, _blobs[1], first);
        var expected = await File.ReadAllBytesAsync(_files[1]);
        for (long i = 0; i < blocks.BlockCount; i++) await blocks.GetAsync(i);
        var requests = _store.RangeGets;

        // A resumed trial in another process: a new cache over the same folder.
        var second = new ShardBlockCache(2 * BlockSize, BlockSize, folder, diskBudgetBytes: 64L << 20);
        var again = await BlobBlocks.OpenAsync(_store, _blobs[1], second);
        var bytes = new List<byte>();
        for (long i = 0; i < again.BlockCount - 2; i++) bytes.AddRange(await again.GetAsync(i));

        Assert.That(_store.RangeGets, Is.EqualTo(requests), "blocks evicted to the folder are read from it");
        Assert.That(bytes.ToArray().AsSpan().SequenceEqual(expected.AsSpan(0, bytes.Count)), Is.True);

        var tight = new ShardBlockCache(BlockSize, BlockSize, folder, diskBudgetBytes: 3 * BlockSize);
        Assert.That(tight.Statistics.BytesCachedOnDisk, Is.LessThanOrEqualTo(3 * BlockSize), "a smaller budget trims the folder");
        Assert.That(Directory.EnumerateFiles(folder).Count(), Is.LessThanOrEqualTo(3));
    }

    [Test]
    public async Task Read_BlobReplacedMidRun_FailsNamingTheBlob()
    {
        var cache = NewCache();
        var source = new BlobShardSource(_store, _blobs[0], cache);
        using var reader = source.Open();
        reader.ReadRowGroup(0);

        var replacement = _temp.File("replacement.parquet");
        ShardWriter.WriteFile(replacement, Documents(30, seed: 99), RowGroupSize);
        await _local.PutAsync(_blobs[0], await File.ReadAllBytesAsync(replacement));

        var error = Assert.Throws<ShardFormatException>(() => reader.ReadRowGroup(3))!;
        Assert.That(error.Message, Does.Contain($"{_local.Location}/{_blobs[0]}"));
        Assert.That(error.Message, Does.Contain("changed while it was being read"));
        Assert.That(error.RowGroup, Is.Null.Or.EqualTo(3));

    }

    [Test]
    public async Task Next_BlobReplacedWhileTheStreamReadsIt_FailsNamingTheBlob()
    {
        var cache = NewCache();
        var sources = BlobSources(cache);
        using var stream = new PackedExampleStream(sources, _tokenizer, 256, seed: 1, shuffle: false);
        stream.Next(); // pins every shard's version and reads the first row group of shard 0
        await ((BlobShardSource)sources[0]).Blocks!.PrefetchIdleAsync();

        var replacement = _temp.File("replacement.parquet");
        ShardWriter.WriteFile(replacement, Documents(30, seed: 99), RowGroupSize);
        await _local.PutAsync(_blobs[0], await File.ReadAllBytesAsync(replacement));

        var error = Assert.Throws<ShardFormatException>(() =>
        {
            for (var i = 0; i < 100_000; i++) stream.Next();
        })!;
        Assert.That(error.Message, Does.Contain($"{_local.Location}/{_blobs[0]}").And.Contain("changed while it was being read"));
        Assert.That(stream.Cursor.UnitIndex, Is.LessThan(4), "it failed in shard 0, at the first row group it had not cached");
    }

    [Test]
    public async Task Open_BlobReplacedBetweenRuns_ReadsTheNewVersionNeverStaleBytes()
    {
        var cache = NewCache();
        using (var reader = new BlobShardSource(_store, _blobs[0], cache).Open())
            foreach (var _ in reader.ReadAll())
            {
            }

        var replacement = _temp.File("replacement.parquet");
        var newDocuments = Documents(30, seed: 99);
        ShardWriter.WriteFile(replacement, newDocuments, RowGroupSize);
        await _local.PutAsync(_blobs[0], await File.ReadAllBytesAsync(replacement));

        using var fresh = new BlobShardSource(_store, _blobs[0], cache).Open();
        Assert.That(fresh.ReadAll().ToList(), Is.EqualTo(newDocuments), "same cache, new ETag: only the new version's bytes");
    }

    [Test]
    public void Next_WithLatencyAndPrefetch_NoStallAfterWarmUp_WithoutPrefetch_StallsAtEveryUnit()
    {
        static (long Stalls, int Units, TimeSpan Waited) Run(IReadOnlyList<IShardSource> sources, ShardBlockCache cache, ITokenizer tokenizer, int prefetch)
        {
            using var stream = new PackedExampleStream(sources, tokenizer, 256, seed: 5, shuffle: true, prefetchUnits: prefetch);
            stream.Next();
            var warm = cache.Statistics;
            var units = 0;
            var unit = stream.Cursor.UnitIndex;
            while (stream.Cursor.Epoch == 0)
            {
                // The trainer's step: it takes longer than the fetch (here: until the background fetches are done).
                foreach (var source in sources.Cast<BlobShardSource>())
                    source.Blocks?.PrefetchIdleAsync().Wait(TimeSpan.FromSeconds(30));
                stream.Next();
                if (stream.Cursor.UnitIndex != unit) units++;
                unit = stream.Cursor.UnitIndex;
            }

            var end = cache.Statistics;
            return (end.Stalls - warm.Stalls, units, end.ForegroundWait - warm.ForegroundWait);
        }

        _store.Latency = TimeSpan.FromMilliseconds(50);
        var withCache = NewCache();
        var with = Run(BlobSources(withCache), withCache, _tokenizer, prefetch: 1);
        var withoutCache = NewCache();
        var without = Run(BlobSources(withoutCache), withoutCache, _tokenizer, prefetch: 0);
        TestContext.Out.WriteLine(
            $"prefetch 1: {with.Stalls} stalls, {with.Waited.TotalMilliseconds:F0} ms waited over {with.Units} unit changes; " +
            $"prefetch 0: {without.Stalls} stalls, {without.Waited.TotalMilliseconds:F0} ms waited; " +
            $"prefetched blocks {withCache.Statistics.PrefetchedBlocks}");

        Assert.That(with.Units, Is.GreaterThanOrEqualTo(5), "the epoch moved through most units after warm-up");
        Assert.That(with.Stalls, Is.Zero, "every block of every later row group was fetched before the trainer needed it");
        Assert.That(withCache.Statistics.PrefetchedBlocks, Is.GreaterThan(0));
        Assert.That(without.Stalls, Is.GreaterThanOrEqualTo(without.Units / 2), "without prefetch new row groups wait on the store");
        Assert.That(without.Waited, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(100) * (without.Units / 2)),
            "each such wait lasts at least a GET and a properties check");
    }

    [Test]
    public async Task Prefetch_MoreRequestsThanTheBound_FetchesOnlyTheFirstTwoRowGroups()
    {
        var cache = NewCache();
        var source = new BlobShardSource(_store, _blobs[0], cache);
        long[] blocksOf;
        using (var reader = source.Open())
            blocksOf = [.. Enumerable.Range(0, 4).Select(g => reader.RowGroupByteRange(g))
                .Select(r => (r.Offset + r.Length - 1) / BlockSize - r.Offset / BlockSize + 1)];
        var cachedAfterOpen = cache.Statistics.BlocksCached;
        _store.Latency = TimeSpan.FromMilliseconds(50);

        for (var group = 0; group < 4; group++) source.Prefetch(group); // a reader far ahead of the network
        await source.Blocks!.PrefetchIdleAsync();

        var fetched = cache.Statistics.BlocksCached - cachedAfterOpen;
        Assert.That(fetched, Is.GreaterThan(0));
        Assert.That(fetched, Is.LessThanOrEqualTo(blocksOf[0] + blocksOf[1]), "requests past two pending prefetches are dropped");
        Assert.That(fetched, Is.LessThan(blocksOf.Sum() - 2), "row groups 2 and 3 were not fetched");
    }

    [Test]
    public async Task Check_BlobShards_SameTotalsAsLocal_AndATruncatedBlobIsNamed()
    {
        var cache = NewCache();
        var local = ShardFiles.Check(_files, ShardCheckDepth.Layout);
        var before = _store.RangeBytes;
        var remote = ShardFiles.Check(BlobSources(cache), ShardCheckDepth.Layout);
        var layoutBytes = _store.RangeBytes - before;

        Assert.That(remote.Ok, Is.True, string.Join("\n", remote.Problems.Select(p => p.Message)));
        Assert.That((remote.Files, remote.RowGroups, remote.Rows), Is.EqualTo((local.Files, local.RowGroups, local.Rows)));
        Assert.That(layoutBytes, Is.LessThan(_files.Sum(f => new FileInfo(f).Length) / 2), "a layout check reads footers, not row data");
        Assert.That(ShardFiles.Check(BlobSources(cache), ShardCheckDepth.Full).Ok, Is.True);

        var bytes = await File.ReadAllBytesAsync(_files[1]);
        await _local.PutAsync(Prefix + "cut.parquet", bytes.AsMemory(0, bytes.Length / 2));
        await _local.PutAsync(Prefix + "tail-cut.parquet", bytes.AsMemory(0, bytes.Length - 20));
        var bad = ShardFiles.Check(BlobShardSource.For(_store, [Prefix + "cut.parquet", Prefix + "tail-cut.parquet", _blobs[0]], cache),
            ShardCheckDepth.Layout);

        Assert.That(bad.Problems.Select(p => p.FilePath), Is.EqualTo(new[]
        {
            $"{_local.Location}/{Prefix}cut.parquet", $"{_local.Location}/{Prefix}tail-cut.parquet",
        }));
        Assert.That(bad.RowGroups, Is.EqualTo(4), "the good shard still counts");
    }

    [Test]
    public void Check_MissingBlob_IsAProblemNamingIt()
    {
        var report = ShardFiles.Check(BlobShardSource.For(_store, [Prefix + "absent.parquet"], NewCache()), ShardCheckDepth.Layout);

        Assert.That(report.Problems, Has.Count.EqualTo(1));
        Assert.That(report.Problems[0].Message, Does.Contain($"{_local.Location}/{Prefix}absent.parquet").And.Contain("does not exist"));
    }

    [Test]
    public async Task ResolveBlobs_FoldersGlobsAndPaths_SortedLikeLocalFiles()
    {
        await _local.PutAsync(Prefix + "notes.txt", "x"u8.ToArray());
        await _local.PutAsync(Prefix + "sub/shard-00009.parquet", await File.ReadAllBytesAsync(_files[0]));
        await _local.PutAsync("fineweb/eval/shard-00000.parquet", await File.ReadAllBytesAsync(_files[0]));

        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, ["fineweb/train"]), Is.EqualTo(_blobs), "a folder: its parquet blobs, not subfolders");
        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, ["fineweb/train/"]), Is.EqualTo(_blobs));
        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, ["fineweb/*/shard-00000.parquet"]),
            Is.EqualTo(new[] { "fineweb/eval/shard-00000.parquet", Prefix + "shard-00000.parquet" }));
        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, ["fineweb/**/*.parquet"]), Is.EqualTo((string[])
        [
            "fineweb/eval/shard-00000.parquet", .. _blobs, Prefix + "sub/shard-00009.parquet",
        ]));
        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, [_blobs[2], _blobs[0], _blobs[2]]), Is.EqualTo(new[] { _blobs[0], _blobs[2] }));
        Assert.That(await ShardFiles.ResolveBlobsAsync(_store, ["fineweb/train/shard-0000?.parquet"]), Is.EqualTo(_blobs));
        var error = Assert.ThrowsAsync<FileNotFoundException>(() => ShardFiles.ResolveBlobsAsync(_store, ["fineweb/test/*.parquet"]))!;
        Assert.That(error.Message, Does.Contain("fineweb/test/*.parquet").And.Contain(_local.Location));
    }
}
