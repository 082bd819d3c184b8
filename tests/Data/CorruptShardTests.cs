using NUnit.Framework;
using Training.Shared.Data;
using Training.Tests.Support;

namespace Training.Tests.Data;

/// <summary>ShardFiles.Check on real shards written by ShardWriter and then damaged on disk.</summary>
public class CorruptShardTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private List<string> WriteShards(int count)
    {
        var files = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var path = _temp.File($"shard-{i:D5}.parquet");
            ShardWriter.WriteFile(path, SampleDocuments.Make(20, seed: i + 1), rowGroupSize: 5);
            files.Add(path);
        }
        return files;
    }

    [Test]
    public void Check_HealthyShards_CountsRowGroupsAndRows([Values] ShardCheckDepth depth)
    {
        var files = WriteShards(2);

        var report = ShardFiles.Check(files, depth);

        Assert.That((report.Ok, report.Files, report.RowGroups, report.Rows), Is.EqualTo((true, 2, 8, 40L)));
        Assert.DoesNotThrow(() => report.ThrowIfBad("data.train"));
    }

    [TestCase(Damage.Truncated)]
    [TestCase(Damage.NotParquet)]
    public void Check_FooterUnreadable_ReportsTheFileAtEveryDepth(Damage damage)
    {
        var files = WriteShards(3);
        ShardDamage.Apply(files[1], damage);

        foreach (var depth in Enum.GetValues<ShardCheckDepth>())
        {
            var report = ShardFiles.Check(files, depth);

            Assert.That(report.Problems, Has.Count.EqualTo(1), depth.ToString());
            Assert.That(report.Problems[0].FilePath, Is.EqualTo(files[1]));
            Assert.That(report.Problems[0].Message, Does.Contain(files[1]).And.Contain("orchestrator data import"));
            Assert.That((report.RowGroups, report.Rows), Is.EqualTo((8, 40L)), "the readable files are still counted");
        }
    }

    [Test]
    public void Check_RowGroupOverwritten_FullCheckNamesFileAndRowGroup()
    {
        var files = WriteShards(2);
        ShardDamage.OverwriteRowGroup(files[0], rowGroup: 2);

        var layout = ShardFiles.Check(files, ShardCheckDepth.Layout);
        var full = ShardFiles.Check(files, ShardCheckDepth.Full);

        Assert.Multiple(() =>
        {
            Assert.That(layout.Ok, Is.True, "the footer is intact: only reading the row group finds the damage");
            Assert.That(full.Problems, Has.Count.EqualTo(1));
            Assert.That(full.Problems[0].RowGroup, Is.EqualTo(2));
            Assert.That(full.Problems[0].Message, Does.Contain(files[0]).And.Contain("row group 2"));
        });
    }

    [Test]
    public void Check_TruncatedKeepingFooter_LayoutCheckFindsChunksOutsideTheFile()
    {
        // Cut the row data short but keep a footer that still describes it: only the offsets and sizes give it away.
        var path = WriteShards(1)[0];
        var bytes = File.ReadAllBytes(path);
        var footerLength = BitConverter.ToInt32(bytes, bytes.Length - 8);
        var footer = bytes[^(footerLength + 8)..];
        var data = bytes[..(bytes.Length - footer.Length)];
        File.WriteAllBytes(path, [.. data[..(data.Length / 2)], .. footer]);

        var report = ShardFiles.Check([path], ShardCheckDepth.Layout);

        Assert.That(report.Problems, Has.Count.EqualTo(1));
        Assert.That(report.Problems[0].Message, Does.Contain(path).And.Contain("row group").And.Contain("claims bytes"));
    }

    [Test]
    public void ThrowIfBad_TwoBadFiles_ListsBoth()
    {
        var files = WriteShards(3);
        ShardDamage.Apply(files[0], Damage.NotParquet);
        ShardDamage.Apply(files[2], Damage.Truncated);

        var error = Assert.Throws<InvalidDataException>(() => ShardFiles.Check(files, ShardCheckDepth.Layout).ThrowIfBad("data.eval"));

        Assert.That(error!.Message, Does.Contain("2 of the 3 data.eval shard files").And.Contain(files[0]).And.Contain(files[2]));
    }
}
