using System.Text.Json;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>A trial through the embedded local cluster with <c>--storage azure://...</c>: checkpoints land in Azurite,
/// credentials come from the workers' environment only, and <c>resume</c> continues from the checkpoint there.</summary>
[Category("Azurite")]
public class AzureStorageEndToEndTests
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

    private static JsonElement Status(string runDir, string trial) =>
        RunState.Status(runDir, trial);

    [Test]
    public async Task SubmitCancelResume_AzureStorage_CheckpointsInAzuriteAndResumeContinuesFromThem()
    {
        var container = "e2e" + Guid.NewGuid().ToString("N")[..12];
        var storage = $"azure://{AzuriteService.Account}/{container}/runs";
        var environment = new Dictionary<string, string>
        {
            ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = SharedAzurite.Instance.ConnectionString,
        };
        var experiment = _dir.Combine("long.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, name: "long", steps: 400));

        using var submit = CliProcess.Start(_dir.Path, environment, "submit", experiment, "--storage", storage);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !finished.IsCompleted)
        {
            if (RunState.Steps(_dir.Combine("runs")) >= 3) break;
            await Task.Delay(100);
        }
        var cancel = await CliProcess.RunAsync(_dir.Path, "cancel", "latest");
        Assert.That(cancel.ExitCode, Is.EqualTo(0), cancel.Output);
        var cancelled = await finished;
        Assert.That(cancelled.ExitCode, Is.EqualTo(130), cancelled.Output);

        var run = Directory.GetDirectories(_dir.Combine("runs")).Single();
        var runId = Path.GetFileName(run);
        var stoppedAt = Status(run, "long-t000").GetProperty("step").GetInt64();
        var blobs = BlobStores.Open(BlobLocation.Parse($"{storage}/{runId}"), SharedAzurite.Instance.Environment);
        var checkpoint = $"trials/long-t000/checkpoints/{CheckpointStore.IdFor(stoppedAt)}/manifest.json";
        Assert.Multiple(async () =>
        {
            Assert.That(await blobs.GetPropertiesAsync(checkpoint), Is.Not.Null, "the checkpoint is in Azurite");
            Assert.That(Directory.Exists(Path.Combine(run, "trials", "long-t000", "checkpoints")), Is.False, "and not in the run folder");
            Assert.That(RunState.Manifest(run).Storage, Is.EqualTo($"{storage}/{runId}"), "the run records where its checkpoints are, without credentials");
            Assert.That(cancelled.Output, Does.Not.Contain(AzuriteService.AccountKey));
        });

        // Resume reads the storage URI from the run-state store; the workers get the credentials from their environment again.
        using var resume = CliProcess.Start(_dir.Path, environment, "resume", "latest");
        var resumed = await CliProcess.FinishAsync(resume, TimeSpan.FromMinutes(3));
        Assert.Multiple(async () =>
        {
            Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.Output);
            Assert.That(resumed.Stdout, Does.Contain($"resumed from step-{stoppedAt:D8} at step {stoppedAt}/400"));
            Assert.That(Status(run, "long-t000").GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(await blobs.GetPropertiesAsync("trials/long-t000/checkpoints/step-00000400/manifest.json"), Is.Not.Null);
            Assert.That(resumed.Output, Does.Not.Contain(AzuriteService.AccountKey));
        });
    }

    [Test]
    public async Task Submit_BadStorageUri_ExitsWithBadInputNamingTheUri()
    {
        var experiment = _dir.Combine("tiny.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path));
        var result = await CliProcess.RunAsync(_dir.Path, "submit", experiment, "--storage", "azure://acct/Bad_Container");
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
            Assert.That(result.Output, Does.Contain("azure://acct/Bad_Container").And.Contain("container"));
            Assert.That(Directory.Exists(_dir.Combine("runs")), Is.False, "nothing was created");
        });
    }

    [Test]
    public async Task Serve_UnknownStorageScheme_ExitsWithBadInputBeforeListening()
    {
        var result = await CliProcess.RunAsync(_dir.Path, "serve", "--port", "0", "--http-port", "0", "--storage", "s3://bucket/ckpt");
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
            Assert.That(result.Output, Does.Contain("s3://bucket/ckpt").And.Contain("unknown scheme"));
            Assert.That(result.Output, Does.Not.Contain("orchestrator serving"));
        });
    }
}
