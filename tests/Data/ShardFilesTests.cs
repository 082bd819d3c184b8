using NUnit.Framework;
using Training.Shared.Data;

namespace Training.Tests.Data;

public class ShardFilesTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        // Content does not matter: resolution never opens the files.
        foreach (var file in new[]
                 {
                     "data/train/shard-00001.parquet", "data/train/shard-00000.parquet", "data/train/notes.txt",
                     "data/train/nested/shard-00000.parquet", "data/eval/shard-00000.parquet", "single.parquet",
                 })
            _temp.WriteText(file, "x");
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    [Test]
    public void Resolve_Directory_ReturnsParquetFilesDirectlyInsideSorted()
    {
        var files = ShardFiles.Resolve(["data/train"], _temp.Path);

        Assert.That(files, Is.EqualTo(new[]
        {
            _temp.File("data", "train", "shard-00000.parquet"), _temp.File("data", "train", "shard-00001.parquet"),
        }));
    }

    [Test]
    public void Resolve_PlainFileRelativeAndAbsolute_ReturnsDistinctAbsolutePath()
    {
        var files = ShardFiles.Resolve(["single.parquet", _temp.File("single.parquet"), "./data/../single.parquet"], _temp.Path);

        Assert.That(files, Is.EqualTo(new[] { _temp.File("single.parquet") }));
    }

    [Test]
    public void Resolve_StarAndQuestionMarkGlobs_MatchWithinOneFolder()
    {
        var files = ShardFiles.Resolve(["data/*/shard-0000?.parquet"], _temp.Path);

        Assert.That(files, Is.EqualTo(new[]
        {
            _temp.File("data", "eval", "shard-00000.parquet"),
            _temp.File("data", "train", "shard-00000.parquet"),
            _temp.File("data", "train", "shard-00001.parquet"),
        }));
    }

    [Test]
    public void Resolve_DoubleStarGlob_MatchesAnyDepthIncludingZero()
    {
        var files = ShardFiles.Resolve(["data/**/*.parquet", "**/single.parquet"], _temp.Path);

        Assert.That(files, Is.EqualTo(new[]
        {
            _temp.File("data", "eval", "shard-00000.parquet"),
            _temp.File("data", "train", "nested", "shard-00000.parquet"),
            _temp.File("data", "train", "shard-00000.parquet"),
            _temp.File("data", "train", "shard-00001.parquet"),
            _temp.File("single.parquet"),
        }));
    }

    [Test]
    public void Resolve_OverlappingPatterns_ReturnsEachFileOnce()
    {
        var files = ShardFiles.Resolve(["data/train", "data/train/*.parquet", "data/train/shard-00000.parquet"], _temp.Path);

        Assert.That(files, Has.Count.EqualTo(2).And.Unique);
    }

    [TestCase("data/missing/*.parquet")]
    [TestCase("nothing.parquet")]
    [TestCase("data/train/nested/deeper")]
    public void Resolve_PatternMatchingNothing_ThrowsNamingThePattern(string pattern)
    {
        var error = Assert.Throws<FileNotFoundException>(() => ShardFiles.Resolve(["single.parquet", pattern], _temp.Path));

        Assert.That(error!.Message, Does.Contain(pattern));
    }

    [Test]
    public void Resolve_DirectoryWithoutParquet_Throws()
    {
        Directory.CreateDirectory(_temp.File("empty"));

        Assert.Throws<FileNotFoundException>(() => ShardFiles.Resolve(["empty"], _temp.Path));
    }
}
