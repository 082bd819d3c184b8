using System.Text.Json;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>
/// Real processes (the orchestrator CLI, its coordinator and a worker) with checkpoints in Azurite: storage stopped for
/// 20 s mid-run, and a truncated newest checkpoint on resume.
/// </summary>
[Category("Azurite")]
[Category("Chaos")]
public class StorageOutageRunTests
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

    private static Dictionary<string, string> EnvironmentFor(AzuriteService azurite) => new()
    {
        ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = azurite.ConnectionString,
    };

    private sealed record Line(string Type, long Step, DateTimeOffset Time);

    private static List<Line> Metrics(string runs) =>
        RunState.Events(runs).Select(e => new Line(e.GetProperty("type").GetString()!, e.GetProperty("step").GetInt64(), e.GetProperty("time").GetDateTimeOffset())).ToList();

    private static string WorkerLogs(string run) =>
        string.Join("\n", Directory.GetFiles(Path.Combine(run, "workers"), "*.log").Select(File.ReadAllText));

    /// <summary>Big enough that a step takes tens of milliseconds and a checkpoint is about 10 MB (blocks of 4 MiB).</summary>
    private string Experiment(int steps, int checkpointEvery) => $"""
        name: outage
        seed: 3
        data:
          train: {_dir.Combine("train")}
          eval: {_dir.Combine("eval")}
        tokenizer:
          kind: byte
          sentinels: 20
        model:
          arch: encoder-decoder
          d_model: 128
          encoder_layers: 2
          decoder_layers: 2
          heads: 4
          kv_heads: 2
          head_dim: 32
          ffn_dim: 512
        objective:
          kind: span-corruption
          input_length: 64
        optimizer:
          lr: 1.0e-3
        schedule:
          warmup_steps: 1
        train:
          steps: {steps}
          global_batch: 8
          micro_batch: 4
          eval_every: 0
          eval_batches: 1
          checkpoint_every: {checkpointEvery}
          keep_checkpoints: 100
          log_every: 1
        """;

    [Test]
    [CancelAfter(300_000)]
    public async Task Submit_AzuriteDownFor20sMidRun_TrainingGoesOnAndTheOutageCheckpointCommits()
    {
        using var azurite = AzuriteService.StartPersistent();
        var storage = $"azure://{AzuriteService.Account}/outage{Guid.NewGuid().ToString("N")[..10]}/runs";
        const int every = 50;
        var experiment = _dir.Combine("outage.yaml");
        File.WriteAllText(experiment, Experiment(steps: 700, checkpointEvery: every));
        var runs = _dir.Combine("runs");

        using var submit = CliProcess.Start(_dir.Path, EnvironmentFor(azurite), "submit", experiment, "--storage", storage);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(4));
        // Storage goes down once the first checkpoint is committed, so one exists from before the outage.
        while (!finished.IsCompleted && !Metrics(runs).Any(l => l.Type == "checkpoint"))
            await Task.Delay(50);
        Assert.That(finished.IsCompleted, Is.False, "the run is still going when storage goes down");
        azurite.Stop();
        var down = DateTimeOffset.UtcNow;
        var stepAtStop = Metrics(runs).Where(l => l.Type == "step").Max(l => l.Step);
        await Task.Delay(TimeSpan.FromSeconds(20));
        var up = DateTimeOffset.UtcNow;
        azurite.Restart();
        var result = await finished;

        var run = Directory.GetDirectories(runs).Single();
        var metrics = Metrics(runs);
        var duringOutage = metrics.Where(l => l.Type == "step" && l.Time > down && l.Time < up).ToList();
        var stepAtRestart = duringOutage.Count > 0 ? duringOutage.Max(l => l.Step) : stepAtStop;
        var committedAfter = metrics.Where(l => l.Type == "checkpoint" && l.Time > up).Select(l => l.Step).ToList();
        var store = new CheckpointStore(BlobStores.Open(BlobLocation.Parse($"{storage}/{Path.GetFileName(run)}"), azurite.Environment),
            "trials/outage-t000/checkpoints");
        var manifests = await store.ListAsync();
        var logs = WorkerLogs(run);
        TestContext.Out.WriteLine($"down at step {stepAtStop}, {duringOutage.Count} steps during the 20 s outage (to step {stepAtRestart}), " +
                                  $"committed after it: {string.Join(", ", committedAfter)}; manifests: {string.Join(", ", manifests.Select(m => m.Step))}");
        Assert.Multiple(async () =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
            Assert.That(duringOutage.Count, Is.GreaterThan(every), "steps kept completing while storage was down");
            Assert.That(committedAfter.Where(s => s > stepAtStop && s <= stepAtRestart), Is.Not.Empty,
                "a checkpoint taken during the outage commits after storage returns");
            Assert.That(committedAfter, Does.Contain(700L), "the final checkpoint commits");
            Assert.That(manifests.Select(m => m.Step), Does.Contain(700L).And.Contains((long)every));
            foreach (var m in manifests)
                Assert.That((await store.LoadStepAsync(m.Step)).Manifest.Id, Is.EqualTo(m.Id), "every committed manifest verifies");
            Assert.That(logs, Does.Contain($"storage {storage}/").And.Contain(": retry "), "the worker logs the retries");
            Assert.That(logs, Does.Match(@"checkpoint step \d+ superseded by step \d+ before its upload started"), "and why a checkpoint is dropped");
            Assert.That(result.Output + logs, Does.Not.Contain(AzuriteService.AccountKey));
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task Resume_NewestCheckpointModelTruncated_FallsBackToPreviousAndSaysSo()
    {
        var azurite = SharedAzurite.Instance;
        var storage = $"azure://{AzuriteService.Account}/trunc{Guid.NewGuid().ToString("N")[..10]}/runs";
        var experiment = _dir.Combine("trunc.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, name: "trunc", steps: 400));
        var runs = _dir.Combine("runs");

        using var submit = CliProcess.Start(_dir.Path, EnvironmentFor(azurite), "submit", experiment, "--storage", storage);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));
        while (!finished.IsCompleted && Metrics(runs).Count(l => l.Type == "checkpoint") < 2)
            await Task.Delay(50);
        var cancel = await CliProcess.RunAsync(_dir.Path, "cancel", "latest");
        Assert.That(cancel.ExitCode, Is.EqualTo(0), cancel.Output);
        Assert.That((await finished).ExitCode, Is.EqualTo(130));

        var run = Directory.GetDirectories(runs).Single();
        var blobs = BlobStores.Open(BlobLocation.Parse($"{storage}/{Path.GetFileName(run)}"), azurite.Environment);
        var store = new CheckpointStore(blobs, "trials/trunc-t000/checkpoints");
        var manifests = await store.ListAsync();
        Assert.That(manifests, Has.Count.GreaterThanOrEqualTo(2));
        var (newest, previous) = (manifests[^1], manifests[^2]);
        var modelPath = $"trials/trunc-t000/checkpoints/{newest.Id}/model.safetensors";
        var model = (await blobs.GetAsync(modelPath))!;
        await blobs.PutAsync(modelPath, model.AsMemory(0, model.Length / 2));

        using var resume = CliProcess.Start(_dir.Path, EnvironmentFor(azurite), "resume", "latest");
        var resumed = await CliProcess.FinishAsync(resume, TimeSpan.FromMinutes(3));
        var reason = $"checkpoint {newest.Id}: model.safetensors has {model.Length / 2} bytes, manifest says {model.Length}; " +
                     $"skipped it, resuming from the older {previous.Id}";
        Assert.Multiple(async () =>
        {
            Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.Output);
            Assert.That(resumed.Stdout, Does.Contain($"[trunc-t000] warning: {reason}"), "the CLI shows the skipped checkpoint and why");
            Assert.That((await store.LoadLatestAsync())!.Skipped, Is.Empty, "and nothing left fails verification");
            Assert.That(resumed.Stdout, Does.Contain($"resumed from {previous.Id} at step {previous.Step}/400"));
            Assert.That(WorkerLogs(run), Does.Contain(reason), "the worker logs it");
            Assert.That(Metrics(runs).Last(l => l.Type == "start").Step, Is.EqualTo(previous.Step));
            var attempt = RunState.Attempts(runs, "trunc-t000")[^1];
            Assert.That(attempt.ResumedFrom, Is.EqualTo(previous.Id));
            Assert.That(attempt.Skipped, Does.StartWith($"{newest.Id}: model.safetensors has {model.Length / 2} bytes"),
                "the attempt names the skipped checkpoint and why, for status");
        });
        // The run record keeps it too, so `orchestrator logs` shows it after the console is gone.
        var logs = await CliProcess.RunAsync(_dir.Path, "logs", "latest");
        Assert.That(logs.Stdout, Does.Contain("\"type\":\"warning\"").And.Contain(reason), logs.Output);
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task Submit_ShardBlobReplacedMidRun_TrialFailsNamingTheBlob()
    {
        var azurite = SharedAzurite.Instance;
        var container = "replaced" + Guid.NewGuid().ToString("N")[..10];
        var data = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{container}"), azurite.Environment);
        foreach (var file in Directory.GetFiles(_dir.Path, "*.parquet", SearchOption.AllDirectories))
            await data.PutAsync($"shards/{Path.GetRelativePath(_dir.Path, file)}", await File.ReadAllBytesAsync(file));
        var experiment = _dir.Combine("replaced.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, name: "replaced", steps: 3000)
            .Replace("train: train", $"train: azure://{AzuriteService.Account}/{container}/shards/train")
            .Replace("eval: eval", $"eval: azure://{AzuriteService.Account}/{container}/shards/eval")
            .Replace("checkpoint_every: 3", "checkpoint_every: 100"));
        var runs = _dir.Combine("runs");

        using var submit = CliProcess.Start(_dir.Path, EnvironmentFor(azurite), "submit", experiment);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(4));
        while (!finished.IsCompleted && Metrics(runs).Count(l => l.Type == "step") < 10)
            await Task.Delay(50);
        Assert.That(finished.IsCompleted, Is.False, "the run is still going when the shard is replaced");
        // Valid parquet with other rows: only the version check can tell the trainer it is not the shard it opened.
        var replaced = "shards/train/shard-00001.parquet";
        await data.PutAsync(replaced, await File.ReadAllBytesAsync(_dir.Combine("train", "shard-00002.parquet")));
        var result = await finished;

        var name = $"azure://{AzuriteService.Account}/{container}/{replaced}";
        var status = await CliProcess.RunAsync(_dir.Path, "status", "latest");
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.Output);
            Assert.That(result.Output, Does.Contain(name).And.Contain("the blob changed while it was being read"), result.Output);
            Assert.That(status.Output, Does.Contain("failed"), status.Output);
            Assert.That(Metrics(runs).Where(l => l.Type == "step").Max(l => l.Step), Is.LessThan(3000), "it stopped at the replacement, not at the end");
        });
    }
}
