using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>Shard patterns resolved to local files and to blobs in Azurite: the same shards give the same sources in
/// the same order and the same examples, and a blob replaced under a reader is reported even from cache.</summary>
[Category("Azurite")]
public class ShardSourcesTests
{
    private TempDirectory _dir = null!;
    private IBlobStore _container = null!;
    private string _uri = null!;
    private ShardSources _sources = null!;

    [SetUp]
    public async Task SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
        var name = "sources" + Guid.NewGuid().ToString("N")[..12];
        _uri = $"azure://{AzuriteService.Account}/{name}";
        _container = BlobStores.Open(BlobLocation.Parse(_uri), SharedAzurite.Instance.Environment);
        foreach (var file in Directory.GetFiles(_dir.Path, "*.parquet", SearchOption.AllDirectories))
            await _container.PutAsync($"corpus/{Path.GetRelativePath(_dir.Path, file)}", await File.ReadAllBytesAsync(file));
        _sources = new ShardSources(location => BlobStores.Open(location, SharedAzurite.Instance.Environment), new ShardBlockCache(64L << 20));
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public void Resolve_FolderAndGlobUris_ListTheBlobsInTheOrderOfTheLocalFiles()
    {
        var local = _sources.Resolve(["train"], _dir.Path);
        var byFolder = _sources.Resolve([$"{_uri}/corpus/train"], _dir.Path);
        var byGlob = _sources.Resolve([$"{_uri}/corpus/**/shard-*.parquet"], _dir.Path);

        Assert.That(local, Has.Count.EqualTo(3));
        Assert.That(local.All(s => s is LocalShardSource), Is.True);
        Assert.That(byFolder.Select(s => s.Name), Is.EqualTo(local.Select(s => $"{_uri}/corpus/train/{Path.GetFileName(s.Name)}")));
        Assert.That(byFolder.All(s => s is BlobShardSource), Is.True);
        Assert.That(byGlob.Select(s => s.Name), Is.EqualTo(byFolder.Select(s => s.Name).Prepend($"{_uri}/corpus/eval/shard-00000.parquet")));
    }

    [Test]
    public void Stream_FromBlobShards_GivesTheSameWindowsAsFromTheLocalFiles()
    {
        var tokenizer = new ByteTokenizer(20);
        using var local = new PackedExampleStream(_sources.Resolve(["train"], _dir.Path), tokenizer, 32, seed: 5, shuffle: true);
        using var remote = new PackedExampleStream(_sources.Resolve([$"{_uri}/corpus/train"], _dir.Path), tokenizer, 32, seed: 5, shuffle: true);

        for (var i = 0; i < 500; i++)
            Assert.That(remote.Next(), Is.EqualTo(local.Next()), $"window {i}");
    }

    [Test]
    public void Resolve_PatternMatchingNoBlob_NamesItAndTheContainer()
    {
        var error = Assert.Throws<FileNotFoundException>(() => _sources.Resolve([$"{_uri}/corpus/nothing-here"], _dir.Path))!;

        Assert.That(error.Message, Does.Contain("'corpus/nothing-here' matched no parquet blobs").And.Contain(_uri));
    }

    [Test]
    public void Resolve_NoCredentialsForTheAccount_SaysWhichVariablesToSet()
    {
        var sources = new ShardSources(location => BlobStores.Open(location, _ => null), new ShardBlockCache(1 << 20));

        var error = Assert.Throws<ArgumentException>(() => sources.Resolve(["azure://elsewhere/corpus/train"], _dir.Path))!;

        Assert.That(error.Message, Does.Contain("no credentials for azure://elsewhere/corpus").And.Contain("TRAINING_STORAGE_ELSEWHERE_CONNECTION_STRING"));
    }

    [Test]
    public async Task Reopen_BlobReplacedWhileItsBytesAreCached_FailsNamingTheBlob()
    {
        var shard = _sources.Resolve([$"{_uri}/corpus/train/shard-00000.parquet"], _dir.Path).Single();
        using (var reader = shard.Open())
            Assert.That(reader.ReadAll().Count(), Is.EqualTo(80), "read once: every block is now cached");

        await _container.PutAsync("corpus/train/shard-00000.parquet", await File.ReadAllBytesAsync(_dir.Combine("train", "shard-00001.parquet")));

        var error = Assert.Throws<ShardFormatException>(() => shard.Open().Dispose())!;
        Assert.That(error.Message, Does.Contain($"{_uri}/corpus/train/shard-00000.parquet").And.Contain("the blob changed while it was being read"));
    }
}
