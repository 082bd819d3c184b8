using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Pipelines;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>A two-stage pipeline with its checkpoints in Azurite: the second stage starts from the picked trial's
/// checkpoints there (model.init_from as an azure:// URI), read with the workers' credentials.</summary>
[Category("Azurite")]
public class PipelineBlobStorageTests
{
    [Test]
    public async Task Submit_StorageInAzurite_SecondStageStartsFromThePickedTrialsBlobCheckpoints()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("pipeline.yaml");
        File.WriteAllText(path, PipelineTests.Pipeline().Replace("pick: best-eval", "pick: 0"));
        var storage = $"azure://{AzuriteService.Account}/pipe{Guid.NewGuid().ToString("N")[..10]}/runs";
        var environment = new Dictionary<string, string>
        {
            ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = SharedAzurite.Instance.ConnectionString,
        };

        using var submit = CliProcess.Start(dir.Path, environment, "submit", path, "--storage", storage);
        var result = await CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));

        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        var run = Directory.GetDirectories(dir.Combine("runs")).Single();
        var status = RunState.Status(run, "pipe-continue-t000");
        Assert.That(status.GetProperty("initialized_from").GetString(),
            Does.StartWith($"{storage}/{Path.GetFileName(run)}/trials/pipe-pretrain-t000/checkpoints@step-00000004"));
    }

    [Test]
    public async Task Validate_InitFromABlobFolderWithoutCheckpoints_SaysSoBeforeAnyWork()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var source = $"azure://{AzuriteService.Account}/empty{Guid.NewGuid().ToString("N")[..10]}/runs/r/trials/t/checkpoints";
        var path = dir.Combine("from-blob.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "fromblob").Replace("  ffn_dim: 64", $"  ffn_dim: 64\n  init_from: {source}"));
        var environment = new Dictionary<string, string>
        {
            ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = SharedAzurite.Instance.ConnectionString,
        };

        using var validate = CliProcess.Start(dir.Path, environment, "validate", path);
        var result = await CliProcess.FinishAsync(validate, TimeSpan.FromMinutes(1));

        Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
        Assert.That(result.Stderr, Does.Contain($"model.init_from {source}: no committed checkpoint under"));
    }
}
