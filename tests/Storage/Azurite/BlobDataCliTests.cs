using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>The CLI with shards in blob storage: `data import --out azure://...` uploads them (never over existing
/// ones), `validate` lists and reads them with this machine's credentials, and a missing credential is a clear error.</summary>
[Category("Azurite")]
public class BlobDataCliTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static Dictionary<string, string> Credentials => new()
    {
        ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = SharedAzurite.Instance.ConnectionString,
    };

    [Test]
    public async Task ImportToAzure_ThenValidate_ReadsTheUploadedShards_AndASecondImportIsRefused()
    {
        var texts = _dir.Combine("texts");
        Directory.CreateDirectory(texts);
        foreach (var (text, i) in TestCorpus.Documents(30, seed: 9).Select((t, i) => (t, i)))
            File.WriteAllText(Path.Combine(texts, $"doc{i:D2}.txt"), text);
        var target = $"azure://{AzuriteService.Account}/import{Guid.NewGuid().ToString("N")[..12]}/edu";

        using var import = CliProcess.Start(_dir.Path, Credentials, "data", "import", "--from", texts, "--out", target,
            "--rows-per-shard", "10", "--eval-fraction", "0.1");
        var imported = await CliProcess.FinishAsync(import, TimeSpan.FromMinutes(1));
        Assert.That(imported.ExitCode, Is.EqualTo(0), imported.Output);
        Assert.That(imported.Stdout, Does.Contain("imported 30 documents").And.Contain($"under {target}"));
        var blobs = await BlobStores.Open(BlobLocation.Parse(target), SharedAzurite.Instance.Environment).ListAsync("");
        Assert.That(blobs.Count(b => b.StartsWith("train/", StringComparison.Ordinal) && b.EndsWith(".parquet", StringComparison.Ordinal)), Is.EqualTo(3));
        Assert.That(blobs.Count(b => b.StartsWith("eval/", StringComparison.Ordinal)), Is.EqualTo(1));

        var experiment = _dir.Combine("blobs.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, name: "blobs")
            .Replace("train: train", $"train: {target}/train").Replace("eval: eval", $"eval: {target}/eval/*.parquet"));
        using var validate = CliProcess.Start(_dir.Path, Credentials, "validate", experiment);
        var validated = await CliProcess.FinishAsync(validate, TimeSpan.FromMinutes(1));
        Assert.That(validated.ExitCode, Is.EqualTo(0), validated.Output);
        Assert.That(validated.Stdout, Does.Contain("data.train: 3 shard(s)").And.Contain("27 rows, all readable"));
        Assert.That(validated.Stdout, Does.Contain("data.eval: 1 shard(s)").And.Contain("3 rows, all readable"));

        using var again = CliProcess.Start(_dir.Path, Credentials, "data", "import", "--from", texts, "--out", target, "--rows-per-shard", "10");
        var refused = await CliProcess.FinishAsync(again, TimeSpan.FromMinutes(1));
        Assert.That(refused.ExitCode, Is.EqualTo(2), refused.Output);
        Assert.That(refused.Stderr, Does.Contain($"{target}/train/").And.Contain("already exists: shards are never replaced in place"));
    }

    [Test]
    public async Task Validate_NoCredentialsForTheAccount_NamesTheVariablesToSet()
    {
        var experiment = _dir.Combine("nocreds.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, name: "nocreds")
            .Replace("train: train", "train: azure://faraway/corpus/train").Replace("eval: eval", "eval: azure://faraway/corpus/eval"));

        var result = await CliProcess.RunAsync(_dir.Path, "validate", experiment);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
        Assert.That(result.Stderr, Does.Contain("no credentials for azure://faraway/corpus").And.Contain("TRAINING_STORAGE_FARAWAY_CONNECTION_STRING"));
    }
}
