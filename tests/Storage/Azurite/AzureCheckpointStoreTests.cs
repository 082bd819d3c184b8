using System.Text;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>The checkpoint commit protocol and verified loading on Azure Blob Storage (Azurite).</summary>
[Category("Azurite")]
public class AzureCheckpointStoreTests
{
    private IBlobStore _blobs = null!;
    private CheckpointStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _blobs = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/c{Guid.NewGuid():N}/runs/r1"), SharedAzurite.Instance.Environment);
        _store = new CheckpointStore(_blobs, "trials/t0/checkpoints");
    }

    private static Dictionary<string, byte[]> Files(string tag) => new()
    {
        ["model.safetensors"] = Encoding.UTF8.GetBytes($"model {tag}"),
        ["state.json"] = Encoding.UTF8.GetBytes($"{{\"tag\":\"{tag}\"}}"),
    };

    [Test]
    public async Task Commit_TwoCheckpoints_LoadsNewestVerifiedAndMovesLatest()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        var loaded = await _store.LoadLatestAsync();
        Assert.Multiple(async () =>
        {
            Assert.That(loaded!.Manifest.Step, Is.EqualTo(20));
            Assert.That(Encoding.UTF8.GetString(loaded.Files["model.safetensors"]), Is.EqualTo("model b"));
            Assert.That(loaded.Skipped, Is.Empty);
            Assert.That(Encoding.UTF8.GetString((await _blobs.GetAsync("trials/t0/checkpoints/latest"))!), Is.EqualTo("step-00000020"));
            Assert.That(await _blobs.ListAsync("trials/t0/checkpoints/step-00000020/"), Is.EqualTo(new[]
            {
                "trials/t0/checkpoints/step-00000020/manifest.json",
                "trials/t0/checkpoints/step-00000020/model.safetensors",
                "trials/t0/checkpoints/step-00000020/state.json",
            }));
        });
    }

    [Test]
    public async Task LoadLatest_NewestModelBlobCorrupted_FallsBackToPrevious()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        // Same length, one byte changed: only the SHA-256 check can tell.
        await _blobs.PutAsync("trials/t0/checkpoints/step-00000020/model.safetensors", Encoding.UTF8.GetBytes("model X"));
        var loaded = await _store.LoadLatestAsync();
        Assert.Multiple(() =>
        {
            Assert.That(loaded!.Manifest.Step, Is.EqualTo(10));
            Assert.That(Encoding.UTF8.GetString(loaded.Files["model.safetensors"]), Is.EqualTo("model a"));
            Assert.That(loaded.Skipped, Has.Count.EqualTo(1));
            Assert.That(loaded.Skipped[0], Does.Contain("step-00000020").And.Contain("SHA-256"));
        });
    }

    [Test]
    public async Task Commit_SameStepTwice_SecondManifestRefused()
    {
        await _store.CommitAsync(10, Files("a"));
        Assert.ThrowsAsync<BlobAlreadyExistsException>(() => _store.CommitAsync(10, Files("b")));
        var loaded = await _store.LoadLatestAsync();
        Assert.That(loaded!.Manifest.Files.Single(f => f.Name == "model.safetensors").Size, Is.EqualTo("model a".Length));
    }

    [Test]
    public async Task Prune_KeepOne_LeavesOnlyNewestCheckpointBlobs()
    {
        foreach (var step in new[] { 1L, 2, 3 }) await _store.CommitAsync(step, Files($"s{step}"));
        await _store.PruneAsync(1);
        var left = await _blobs.ListAsync("trials/t0/checkpoints/");
        Assert.That(left.Where(p => !p.EndsWith("/latest")).Select(p => p.Split('/')[3]).Distinct(), Is.EqualTo(new[] { "step-00000003" }));
    }
}
