using System.Globalization;
using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Pipelines;

/// <summary>Pipelines of stages run by the real orchestrator program on a local cluster, on real parquet shards.</summary>
public class PipelineTests
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

    /// <summary>A tiny Ettin encoder pretrained with MLM at two learning rates, then continued as a CLM decoder from the
    /// pretrain trial with the best final eval loss.</summary>
    internal static string Pipeline(int continueSteps = 4, string pretrainExtra = "") => $$"""
        name: pipe
        seed: 4
        data:
          train: train
          eval: eval
        tokenizer:
          kind: byte
          sentinels: 4
        model:
          arch: encoder-only
          d_model: 32
          layers: 2
          heads: 2
          head_dim: 16
          ffn_dim: 48
          local_window: 8
        objective:
          kind: auto
          input_length: 32
        train:
          steps: 4
          global_batch: 4
          eval_batches: 2
          log_every: 1
        stages:
          pretrain:
            sweep:
              grid:
                optimizer.lr: [1.0e-2, 1.0e-5]
        {{pretrainExtra}}
          continue:
            after: pretrain
            model:
              arch: ettin-decoder
              init_from: {stage: pretrain, pick: best-eval}
            train:
              steps: {{continueSteps}}
              checkpoint_every: 2
        """;

    private string Write(string yaml)
    {
        var path = _dir.Combine("pipeline.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private string RunDir() => Directory.GetDirectories(_dir.Combine("runs")).Single();

    private static JsonElement Status(string runDir, string trial) =>
        RunState.Status(runDir, trial);

    private static string State(string runDir, string trial) => Status(runDir, trial).GetProperty("state").GetString()!;

    [Test]
    public async Task Submit_TwoStages_ContinuesFromTheFirstStagesBestEvalTrial()
    {
        var path = Write(Pipeline());

        var validate = await CliProcess.RunAsync(_dir.Path, "validate", path);
        var inspect = await CliProcess.RunAsync(_dir.Path, "inspect", path);
        var result = await CliProcess.RunAsync(_dir.Path, "submit", path);

        Assert.That(validate.ExitCode, Is.EqualTo(0), validate.Output);
        Assert.That(validate.Stdout, Does.Contain("pretrain -> continue").And.Contain("pipe-pretrain-t001").And.Contain("pipe-continue-t000"));
        Assert.That(inspect.ExitCode, Is.EqualTo(0), inspect.Output);
        Assert.That(inspect.Stdout, Does.Contain("pretrain -> continue").And.Contain("weights from stage pretrain, pick best-eval"));
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var run = RunDir();
        var runId = Path.GetFileName(run);
        var evalLosses = new[] { "pipe-pretrain-t000", "pipe-pretrain-t001" }
            .ToDictionary(t => t, t => Status(run, t).GetProperty("eval_loss").GetDouble());
        var best = evalLosses.MinBy(e => e.Value).Key;
        var continued = Status(run, "pipe-continue-t000");
        Assert.Multiple(() =>
        {
            Assert.That(evalLosses.Values.Distinct().Count(), Is.EqualTo(2), "the two learning rates end at different eval losses");
            Assert.That(continued.GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(continued.GetProperty("initialized_from").GetString(), Does.StartWith($"{runId}/{best}@step-00000004"));
            Assert.That(File.ReadAllText(Path.Combine(run, "trials", "pipe-continue-t000", "spec.yaml")), Does.Contain($"init_from: {runId}/{best}"));
        });
        // The continued trial starts only after every pretrain trial has finished.
        var finishedPretrain = new[] { "pipe-pretrain-t000", "pipe-pretrain-t001" }
            .Max(t => RunState.Events(run, t).Last().GetProperty("time").GetDateTimeOffset());
        var startedContinue = RunState.Events(run, "pipe-continue-t000").First().GetProperty("time").GetDateTimeOffset();
        Assert.That(startedContinue, Is.GreaterThanOrEqualTo(finishedPretrain));
    }

    [Test]
    public async Task Submit_EvalOnlyStages_ScoreThePickedWeightsUnderEitherObjectiveWithoutTraining()
    {
        // train.steps 0: the picked weights are evaluated as they are, as an encoder (MLM) and as a decoder (CLM).
        var path = Write(Pipeline() + "\n" + """
              as-mlm:
                after: pretrain
                model:
                  init_from: {stage: pretrain, pick: 0}
                train:
                  steps: 0
              as-clm:
                after: pretrain
                model:
                  arch: ettin-decoder
                  init_from: {stage: pretrain, pick: 0}
                train:
                  steps: 0
            """);

        var result = await CliProcess.RunAsync(_dir.Path, "submit", path);

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var run = RunDir();
        var source = Status(run, "pipe-pretrain-t000");
        var asMlm = Status(run, "pipe-as-mlm-t000");
        var asClm = Status(run, "pipe-as-clm-t000");
        Assert.Multiple(() =>
        {
            foreach (var trial in new[] { asMlm, asClm })
            {
                Assert.That(trial.GetProperty("state").GetString(), Is.EqualTo("completed"));
                Assert.That(trial.GetProperty("step").GetInt64(), Is.EqualTo(0), "nothing was trained");
                Assert.That(trial.GetProperty("initialized_from").GetString(), Does.Contain("pipe-pretrain-t000@step-00000004"));
            }
            // The same weights under the same objective and eval data score what their own trial scored at its end.
            Assert.That(asMlm.GetProperty("eval_loss").GetDouble(), Is.EqualTo(source.GetProperty("eval_loss").GetDouble()).Within(1e-5));
            Assert.That(asClm.GetProperty("eval_loss").GetDouble(), Is.Not.EqualTo(source.GetProperty("eval_loss").GetDouble()).Within(1e-3),
                "next-token loss is another measure of the same weights");
            // The summary's scores table: the pretrained weights under both models / objectives, in one row.
            var scores = result.Stdout[result.Stdout.IndexOf("final eval loss of each trial's weights", StringComparison.Ordinal)..];
            var row = scores.Split('\n').Single(l => l.Contains("pipe-pretrain-t000"));
            Assert.That(row, Does.Contain(source.GetProperty("eval_loss").GetDouble().ToString("F4", CultureInfo.InvariantCulture))
                .And.Contain(asClm.GetProperty("eval_loss").GetDouble().ToString("F4", CultureInfo.InvariantCulture)));
            Assert.That(scores, Does.Contain("ettin-decoder / clm").And.Contain("encoder-only / mlm"));
            var checkpoints = Path.Combine(run, "trials", "pipe-as-clm-t000", "checkpoints");
            Assert.That(Directory.Exists(checkpoints) ? Directory.EnumerateFileSystemEntries(checkpoints).Select(Path.GetFileName) : [],
                Has.None.StartWith("step-").And.None.EqualTo("latest"), "an eval-only trial commits no copy of the weights it scored");
        });
    }

    [Test]
    public async Task Submit_WithStorageFolder_ContinuesFromThePickedTrialsCheckpointsThere()
    {
        var path = Write(Pipeline().Replace("pick: best-eval", "pick: 0"));

        var result = await CliProcess.RunAsync(_dir.Path, "submit", path, "--storage", _dir.Combine("store"));

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var run = RunDir();
        var checkpoints = Path.Combine(_dir.Combine("store"), Path.GetFileName(run), "trials", "pipe-pretrain-t000", "checkpoints");
        Assert.That(Status(run, "pipe-continue-t000").GetProperty("initialized_from").GetString(), Does.StartWith(checkpoints + "@step-00000004"));
    }

    [Test]
    public async Task Submit_FirstStageFails_SkipsTheSecondWithTheReason()
    {
        // The first stage's eval data is a file that is not parquet: every pretrain trial fails before its first step.
        File.WriteAllText(_dir.Combine("broken.parquet"), "not a parquet file");
        var path = Write(Pipeline(pretrainExtra: "    data:\n      eval: broken.parquet"));

        var result = await CliProcess.RunAsync(_dir.Path, "submit", path);
        var status = await CliProcess.RunAsync(_dir.Path, "status", "latest");

        Assert.That(result.ExitCode, Is.EqualTo(1), result.Output);
        var run = RunDir();
        Assert.Multiple(() =>
        {
            Assert.That(State(run, "pipe-pretrain-t000"), Is.EqualTo("failed"));
            Assert.That(State(run, "pipe-continue-t000"), Is.EqualTo("skipped"));
            Assert.That(Status(run, "pipe-continue-t000").GetProperty("error").GetString(),
                Does.StartWith("stage pretrain did not complete: trial pipe-pretrain-t00").And.Contain("failed"));
            Assert.That(File.Exists(Path.Combine(run, "trials", "pipe-continue-t000", "checkpoints", "latest")), Is.False, "it never ran");
            Assert.That(status.Stdout, Does.Contain("skipped (stage pretrain did not complete"));
        });
    }

    [Test]
    public async Task Resume_AfterCancelInTheSecondStage_FinishesWithoutRerunningTheFirst()
    {
        var path = Write(Pipeline(continueSteps: 400));
        using var submit = CliProcess.Start(_dir.Path, "submit", path);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));
        // Cancel once the second stage has taken a few steps.
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if (RunState.Steps(_dir.Combine("runs"), "pipe-continue-t000") >= 3) break;
            await Task.Delay(100);
        }
        var cancel = await CliProcess.RunAsync(_dir.Path, "cancel", "latest");
        var cancelled = await finished;
        Assert.That(cancel.ExitCode, Is.EqualTo(0), cancel.Output);
        Assert.That(cancelled.ExitCode, Is.EqualTo(130), cancelled.Output);
        var run = RunDir();
        Assert.That(State(run, "pipe-continue-t000"), Is.EqualTo("cancelled"));
        var pretrainLines = new[] { "pipe-pretrain-t000", "pipe-pretrain-t001" }.ToDictionary(t => t, t => RunState.EventLines(run, t).Count);

        var resumed = await CliProcess.RunAsync(_dir.Path, "resume", "latest");

        Assert.Multiple(() =>
        {
            Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.Output);
            Assert.That(resumed.Stdout, Does.Contain("resuming 1 unfinished trial(s)"));
            Assert.That(State(run, "pipe-continue-t000"), Is.EqualTo("completed"));
            Assert.That(Status(run, "pipe-continue-t000").GetProperty("step").GetInt64(), Is.EqualTo(400));
            Assert.That(resumed.Stdout, Does.Contain("[pipe-continue-t000] resumed from step-"));
            Assert.That(pretrainLines.Select(p => RunState.EventLines(run, p.Key).Count), Is.EqualTo(pretrainLines.Values), "the first stage did not run again");
        });
    }
}
