using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cli;

/// <summary>The real orchestrator program, run as a child process on real parquet shards.</summary>
public class CliTests
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

    private string WriteExperiment(string yaml, string name = "experiment.yaml")
    {
        var path = _dir.Combine(name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private string RunDir() => Directory.GetDirectories(_dir.Combine("runs")).Single();

    private static JsonElement Status(string runDir, string trial) =>
        RunState.Status(runDir, trial);

    [Test]
    public async Task Submit_SweepOfTwoTrials_RunsBothAndPrintsComparison()
    {
        var path = WriteExperiment(TestCorpus.TinyExperiment(_dir.Path, name: "cli", steps: 4, extra: """
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 3.0e-3]
            """));
        var result = await CliProcess.RunAsync(_dir.Path, "submit", path);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var run = RunDir();
        Assert.Multiple(() =>
        {
            Assert.That(result.Stdout, Does.Contain("cli-t000").And.Contain("cli-t001").And.Contain("optimizer.lr"));
            Assert.That(result.Stdout, Does.Contain("[cli-t000] step 4/4"));
            Assert.That(Status(run, "cli-t000").GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(Status(run, "cli-t001").GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(RunState.Steps(run, "cli-t001"), Is.EqualTo(4));
            Assert.That(File.Exists(Path.Combine(run, "trials", "cli-t000", "checkpoints", "step-00000004", "manifest.json")), Is.True);
        });

        var status = await CliProcess.RunAsync(_dir.Path, "status", "latest");
        Assert.That(status.ExitCode, Is.EqualTo(0), status.Output);
        Assert.That(status.Stdout, Does.Contain("completed"));
        Assert.That(status.Stdout, Does.Contain("attempts").And.Contain("scratch"), "status lists each trial's attempt and where it started");
        var logs = await CliProcess.RunAsync(_dir.Path, "logs", "latest", "--trial", "t001");
        Assert.That(logs.Stdout.Split('\n').Count(l => l.Contains("\"type\":\"step\"")), Is.EqualTo(4));
    }

    [Test]
    public async Task Submit_InvalidExperiment_ExitsTwoNamingFileLineAndKey_AndCreatesNoRun()
    {
        var yaml = TestCorpus.TinyExperiment(_dir.Path).Replace("d_model: 32", "d_model: -5").Replace("  heads: 2", "  hedas: 2");
        var path = WriteExperiment(yaml, "bad.yaml");
        var result = await CliProcess.RunAsync(_dir.Path, "submit", path);
        var lines = yaml.Split('\n');
        var dModelLine = Array.FindIndex(lines, l => l.Contains("d_model")) + 1;
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2));
            Assert.That(result.Stderr, Does.Contain($"bad.yaml:{dModelLine}:").And.Contain("model.d_model"));
            Assert.That(result.Stderr, Does.Contain("hedas").And.Contain("heads"));
            Assert.That(Directory.Exists(_dir.Combine("runs")), Is.False, "nothing ran");
        });
    }

    [Test]
    public async Task CancelThenResume_ContinuesFromCheckpointToCompletion()
    {
        var path = WriteExperiment(TestCorpus.TinyExperiment(_dir.Path, name: "long", steps: 400));
        using var submit = CliProcess.Start(_dir.Path, "submit", path);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));
        // Wait until the trial has taken a few steps, then cancel from "another terminal".
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if (RunState.Steps(_dir.Combine("runs")) >= 3) break;
            await Task.Delay(100);
        }
        var cancel = await CliProcess.RunAsync(_dir.Path, "cancel", "latest");
        Assert.That(cancel.ExitCode, Is.EqualTo(0), cancel.Output);
        var cancelled = await finished;
        Assert.That(cancelled.ExitCode, Is.EqualTo(130), cancelled.Output);
        var run = RunDir();
        var stoppedAt = Status(run, "long-t000").GetProperty("step").GetInt64();
        Assert.That(Status(run, "long-t000").GetProperty("state").GetString(), Is.EqualTo("cancelled"));
        Assert.That(stoppedAt, Is.LessThan(400));

        // Changed settings are validated like the file: a bad one changes nothing and runs nothing.
        var specBefore = File.ReadAllText(Path.Combine(run, "trials", "long-t000", "spec.yaml"));
        var refused = await CliProcess.RunAsync(_dir.Path, "resume", "latest", "--set", "optimizer.lr=fast", "--set", "optimizer.lrr=1");
        Assert.Multiple(() =>
        {
            Assert.That(refused.ExitCode, Is.EqualTo(2), refused.Output);
            Assert.That(refused.Stderr, Does.Contain("optimizer.lrr").And.Contain("unknown key"), refused.Output);
            Assert.That(File.ReadAllText(Path.Combine(run, "trials", "long-t000", "spec.yaml")), Is.EqualTo(specBefore));
            Assert.That(Status(run, "long-t000").GetProperty("state").GetString(), Is.EqualTo("cancelled"));
        });
        var badValue = await CliProcess.RunAsync(_dir.Path, "resume", "latest", "--set", "optimizer.lr=fast");
        Assert.That(badValue.ExitCode, Is.EqualTo(2), badValue.Output);
        Assert.That(badValue.Stderr, Does.Contain("optimizer.lr"), badValue.Output);

        // Continue with fewer steps than first planned: the trial ends at the new count.
        var target = stoppedAt + 6;
        var resumed = await CliProcess.RunAsync(_dir.Path, "resume", "latest", "--steps", target.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.Output);
            Assert.That(resumed.Stdout, Does.Contain($"with train.steps={target}"));
            Assert.That(resumed.Stdout, Does.Contain($"resumed from step-{stoppedAt:D8} at step {stoppedAt}/{target}"));
            Assert.That(Status(run, "long-t000").GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(Status(run, "long-t000").GetProperty("step").GetInt64(), Is.EqualTo(target));
            Assert.That(File.ReadAllText(Path.Combine(run, "trials", "long-t000", "spec.yaml")), Does.Contain($"steps: {target}"));
        });
    }

    [Test]
    public async Task DataImport_PlainTextFolder_WritesShardsTheTrainerReads()
    {
        var texts = _dir.Combine("texts");
        Directory.CreateDirectory(texts);
        foreach (var (text, i) in TestCorpus.Documents(30, seed: 9).Select((t, i) => (t, i)))
            File.WriteAllText(Path.Combine(texts, $"doc{i:D2}.txt"), text);
        var result = await CliProcess.RunAsync(_dir.Path, "data", "import", "--from", texts, "--out", _dir.Combine("imported"),
            "--rows-per-shard", "10", "--eval-fraction", "0.1");
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(result.Stdout, Does.Contain("imported 30 documents"));
        Assert.That(Directory.GetFiles(_dir.Combine("imported", "train"), "*.parquet"), Is.Not.Empty);
        Assert.That(Directory.GetFiles(_dir.Combine("imported", "eval"), "*.parquet"), Is.Not.Empty);

        var yaml = TestCorpus.TinyExperiment(_dir.Path, name: "imported", steps: 2).Replace("train: train", "train: imported/train").Replace("eval: eval", "eval: imported/eval");
        var submit = await CliProcess.RunAsync(_dir.Path, "submit", WriteExperiment(yaml, "imported.yaml"));
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output);
    }

    [Test]
    public async Task UnknownCommandOrOption_ExitsTwoWithASuggestionAndWhereToReadMore()
    {
        var unknown = await CliProcess.RunAsync(_dir.Path, "sumbit", "x.yaml");
        var badOption = await CliProcess.RunAsync(_dir.Path, "status", "--colour", "red");
        var mistyped = await CliProcess.RunAsync(_dir.Path, "logs", "latest", "--trail", "t001");
        Assert.Multiple(() =>
        {
            Assert.That(unknown.ExitCode, Is.EqualTo(2));
            Assert.That(unknown.Stderr, Does.Contain("unknown command 'sumbit'; did you mean 'submit'?").And.Contain("'orchestrator --help'"));
            Assert.That(badOption.ExitCode, Is.EqualTo(2));
            Assert.That(badOption.Stderr, Does.Contain("unknown option --colour for 'orchestrator status'").And.Contain("--runs")
                .And.Contain("'orchestrator status --help'"));
            Assert.That(mistyped.ExitCode, Is.EqualTo(2));
            Assert.That(mistyped.Stderr, Does.Contain("unknown option --trail").And.Contain("did you mean --trial?"));
            Assert.That(unknown.Output + badOption.Output + mistyped.Output, Does.Not.Contain("   at "), "no stack trace");
        });
    }
}
