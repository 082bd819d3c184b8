using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cli;

/// <summary><c>orchestrator validate</c>, run as a real process, on an experiment whose shards are damaged.</summary>
public class CorruptShardCliTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
        File.WriteAllText(_dir.Combine("tiny.yaml"), TestCorpus.TinyExperiment(_dir.Path));
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task Validate_HealthyShards_ExitsZeroAndCountsThem()
    {
        var result = await CliProcess.RunAsync(_dir.Path, "validate", "tiny.yaml");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Contain("data.train: 3 shard(s), 12 row group(s), 240 rows, all readable")
            .And.Contain("data.eval: 1 shard(s)").And.Contain("valid, 1 trial(s)"));
    }

    [Test]
    public async Task Validate_DamagedShard_ExitsTwoNamingTheFile(
        [Values("train/shard-00001.parquet", "eval/shard-00000.parquet")] string shard, [Values] Damage damage)
    {
        var path = _dir.Combine(shard);
        ShardDamage.Apply(path, damage, rowGroup: 1);

        var result = await CliProcess.RunAsync(_dir.Path, "validate", "tiny.yaml");

        var key = shard.StartsWith("train", StringComparison.Ordinal) ? "data.train" : "data.eval";
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
            Assert.That(result.Stderr, Does.Contain($"{key}: Shard '{path}").And.Contain("orchestrator data import"));
            if (damage == Damage.RowGroupOverwritten) Assert.That(result.Stderr, Does.Contain("row group 1"));
            Assert.That(result.Stdout, Does.Not.Contain("valid,"));
        });
    }
}
