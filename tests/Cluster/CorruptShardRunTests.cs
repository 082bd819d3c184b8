using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>
/// <c>orchestrator submit</c> on a local cluster (real coordinator and worker processes) with a shard that is bad
/// before the trial starts, or goes bad while it runs: the trial fails with the file named in its status, in the
/// submit summary and in <c>orchestrator status</c>, and its step is the last step it really trained.
/// </summary>
[Category("Cluster")]
public class CorruptShardRunTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private string Experiment(string name, int steps)
    {
        var path = _dir.Combine($"{name}.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(_dir.Path, name, steps).Replace("  eval_every: 0", "  eval_every: 5"));
        return path;
    }

    private string TrialDir(string trial) => Directory.GetDirectories(_dir.Combine("runs")).Single() + $"/trials/{trial}";

    private JsonElement Status(string trial) => RunState.Status(_dir.Combine("runs"), trial);

    private List<long> LoggedSteps(string trial)
    {
        // While polling, the runs folder can exist before the run's own folder does.
        var runs = _dir.Combine("runs");
        if (!Directory.Exists(runs) || Directory.GetDirectories(runs).Length != 1) return [];
        return RunState.Events(runs, trial).Where(e => e.GetProperty("type").GetString() == "step").Select(e => e.GetProperty("step").GetInt64()).ToList();
    }

    [Test]
    public async Task Submit_ShardDamagedBeforeStart_FailsBeforeAnyStepNamingTheFile(
        [Values("train/shard-00002.parquet", "eval/shard-00000.parquet")] string shard)
    {
        var path = _dir.Combine(shard);
        ShardDamage.Apply(path, Damage.Truncated);

        var submit = await CliProcess.RunAsync(_dir.Path, "submit", Experiment("early", steps: 6), "--runs", _dir.Combine("runs"));

        var status = Status("early-t000");
        Assert.Multiple(() =>
        {
            Assert.That(submit.ExitCode, Is.EqualTo(1), submit.Output);
            Assert.That(status.GetProperty("state").GetString(), Is.EqualTo("failed"));
            Assert.That(status.GetProperty("error").GetString(), Does.Contain(path).And.Contain("orchestrator data import"));
            Assert.That(status.GetProperty("step").GetInt64(), Is.EqualTo(0));
            Assert.That(LoggedSteps("early-t000"), Is.Empty, "no training happened with the bad file");
            Assert.That(submit.Stdout, Does.Contain("failed (ShardFormatException").And.Contain(Path.GetFileName(path)));
        });
    }

    [Test]
    public async Task Submit_TrainShardsDamagedMidRun_FailsWithReasonAndKeepsLastRealStep()
    {
        using var process = CliProcess.Start(_dir.Path, "submit", Experiment("midrun", steps: 2000), "--runs", _dir.Combine("runs"));
        var finished = CliProcess.FinishAsync(process, TimeSpan.FromMinutes(4));

        // Once it has trained a few steps, overwrite a row group of every training shard in place (footers intact).
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!finished.IsCompleted && DateTime.UtcNow < deadline && (Directory.Exists(_dir.Combine("runs")) ? LoggedSteps("midrun-t000").Count : 0) < 3)
            await Task.Delay(200);
        Assert.That(finished.IsCompleted, Is.False, "the trial was still running when its shards were damaged");
        var shards = Directory.GetFiles(_dir.Combine("train"), "*.parquet");
        foreach (var shard in shards)
            for (var group = 0; group < ShardDamage.RowGroupCount(shard); group++)
                ShardDamage.OverwriteRowGroup(shard, group);
        var submit = await finished;

        var status = Status("midrun-t000");
        var logged = LoggedSteps("midrun-t000");
        var shown = await CliProcess.RunAsync(_dir.Path, "status", "latest", "--runs", _dir.Combine("runs"));
        Assert.Multiple(() =>
        {
            Assert.That(submit.ExitCode, Is.EqualTo(1), submit.Output);
            Assert.That(status.GetProperty("state").GetString(), Is.EqualTo("failed"));
            Assert.That(status.GetProperty("error").GetString(), Does.Contain("ShardFormatException").And.Contain("row group")
                .And.Contain(_dir.Combine("train")).And.Contain("orchestrator data import"));
            // log_every is 1: the last logged step is the last one trained; the failed step does not count.
            Assert.That(logged, Has.Count.GreaterThanOrEqualTo(3));
            Assert.That(status.GetProperty("step").GetInt64(), Is.EqualTo(logged.Max()));
            Assert.That(submit.Stdout, Does.Contain($"failed (ShardFormatException").And.Contain($"{logged.Max()}/2000"));
            Assert.That(shown.Stdout, Does.Contain("failed (ShardFormatException").And.Contain($"{logged.Max()}/2000"));
        });
    }
}
