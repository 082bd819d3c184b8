using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;

namespace Training.Tests.Storage;

public sealed class LocalFolderBlobStoreTests
{
    private TempDirectory _dir = null!;
    private LocalFolderBlobStore _blobs = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        _blobs = new LocalFolderBlobStore(_dir.Path);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task GetRange_InsideAndPastTheEnd_ReturnsThoseBytesOnly()
    {
        var content = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        await _blobs.PutAsync("data/shard.parquet", content);

        Assert.That(await _blobs.GetRangeAsync("data/shard.parquet", 10, 5), Is.EqualTo(new byte[] { 10, 11, 12, 13, 14 }));
        Assert.That(await _blobs.GetRangeAsync("data/shard.parquet", 96, 10), Is.EqualTo(new byte[] { 96, 97, 98, 99 }));
        Assert.That(await _blobs.GetRangeAsync("data/shard.parquet", 200, 10), Is.Empty);
        Assert.ThrowsAsync<FileNotFoundException>(() => _blobs.GetRangeAsync("data/missing.parquet", 0, 1));
    }

    [Test]
    public async Task GetProperties_ReplacedBlob_ChangesItsETag()
    {
        await _blobs.PutAsync("a.bin", new byte[] { 1, 2, 3 });
        var first = await _blobs.GetPropertiesAsync("a.bin");
        File.SetLastWriteTimeUtc(Path.Combine(_dir.Path, "a.bin"), DateTime.UtcNow.AddMinutes(-1));
        var aged = await _blobs.GetPropertiesAsync("a.bin");
        await _blobs.PutAsync("a.bin", new byte[] { 4, 5, 6 });
        var replaced = await _blobs.GetPropertiesAsync("a.bin");

        Assert.That(first!.Size, Is.EqualTo(3));
        Assert.That(replaced!.ETag, Is.Not.EqualTo(aged!.ETag));
        Assert.That(await _blobs.GetPropertiesAsync("missing.bin"), Is.Null);
    }
}
