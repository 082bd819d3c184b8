using System.Diagnostics;
using System.Text;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Shared.Training;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>Checkpoint commits while Azurite is down: the writer never blocks its caller, commits after storage returns,
/// keeps at most one snapshot waiting, and a commit whose retries run out fails loudly with nothing half-committed.</summary>
[Category("Azurite")]
[Category("Chaos")]
public class CheckpointOutageTests
{
    private AzuriteService _azurite = null!;

    [SetUp]
    public void SetUp() => _azurite = AzuriteService.StartPersistent();

    [TearDown]
    public void TearDown() => _azurite.Dispose();

    private IBlobStore Open(string container) =>
        BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{container}/runs/r1"), _azurite.Environment);

    private static Dictionary<string, byte[]> Files(long step, int size = 3 << 20)
    {
        var model = new byte[size];
        new Random((int)step).NextBytes(model);
        return new() { ["model.safetensors"] = model, ["state.json"] = Encoding.UTF8.GetBytes($"{{\"step\":{step}}}") };
    }

    [Test]
    public async Task Submit_StorageDownFor20s_NeverBlocksSupersedesWaitingAndCommitsAfterRestart()
    {
        var blobs = Open("outage" + Guid.NewGuid().ToString("N")[..10]);
        var store = new CheckpointStore(blobs, "trials/t0/checkpoints");
        var committed = new List<long>();
        var log = new List<string>();
        var writer = new CheckpointWriter(store, keep: 10, m => { lock (committed) committed.Add(m.Step); }, log.Add);
        writer.Submit(10, Files(10));
        writer.Flush();

        _azurite.Stop();
        var blocked = TimeSpan.Zero;
        foreach (var step in new long[] { 20, 30, 40 })
        {
            var clock = Stopwatch.StartNew();
            writer.Submit(step, Files(step));
            blocked = blocked > clock.Elapsed ? blocked : clock.Elapsed;
            await Task.Delay(TimeSpan.FromSeconds(2));
        }
        await Task.Delay(TimeSpan.FromSeconds(14)); // 20 s down in all
        lock (committed) Assert.That(committed, Is.EqualTo(new long[] { 10 }), "nothing commits while storage is down");
        _azurite.Restart();
        var flush = Stopwatch.StartNew();
        writer.Flush();

        var manifests = await store.ListAsync();
        Assert.Multiple(async () =>
        {
            Assert.That(blocked, Is.LessThan(TimeSpan.FromMilliseconds(200)), "Submit returns at once while an upload retries");
            Assert.That(committed, Is.EqualTo(new long[] { 10, 20, 40 }), "the in-flight one commits, then the newest waiting one");
            Assert.That(writer.Superseded, Is.EqualTo(new long[] { 30 }));
            Assert.That(log, Has.Some.Contains("checkpoint step 30 superseded by step 40"));
            Assert.That(manifests.Select(m => m.Step), Is.EqualTo(new long[] { 10, 20, 40 }));
            foreach (var m in manifests)
                Assert.That((await store.LoadStepAsync(m.Step)).Files["model.safetensors"], Is.EqualTo(Files(m.Step)["model.safetensors"]));
            Assert.That(flush.Elapsed, Is.LessThan(TimeSpan.FromSeconds(90)), "commits soon after storage returns");
        });
    }

    [Test]
    public async Task Commit_StorageStaysDown_FailsLoudlyAfterItsBudgetAndLeavesNoManifest()
    {
        var blobs = Open("down" + Guid.NewGuid().ToString("N")[..10]);
        // A short outer budget for the test; the inner store still retries for about 15 s per call.
        var store = new CheckpointStore(blobs, "trials/t0/checkpoints", new StorageRetryOptions
        {
            MaxRetryAttempts = 1, BaseDelay = TimeSpan.FromMilliseconds(200), RetryExhaustedStore = true,
        });
        var writer = new CheckpointWriter(store, keep: 10, _ => { });
        _azurite.Stop();
        writer.Submit(10, Files(10));
        var failure = Assert.Throws<BlobStoreException>(() => writer.Flush())!;
        _azurite.Restart();
        Assert.Multiple(async () =>
        {
            Assert.That(failure.Transient, Is.True);
            Assert.That(failure.Message, Does.Contain("storage unavailable").And.Not.Contain(AzuriteService.AccountKey));
            Assert.That(await store.ListAsync(), Is.Empty, "no manifest: the checkpoint does not exist");
            Assert.That(await store.LoadLatestAsync(), Is.Null);
        });
    }

    [Test]
    public async Task SetAside_SkippedCorruptCheckpoint_ItsStepCanBeCommittedAgain()
    {
        var blobs = Open("aside" + Guid.NewGuid().ToString("N")[..10]);
        var store = new CheckpointStore(blobs, "trials/t0/checkpoints");
        await store.CommitAsync(10, Files(10, 1000));
        await store.CommitAsync(20, Files(20, 1000));
        await blobs.PutAsync("trials/t0/checkpoints/step-00000020/model.safetensors", new byte[500]);
        var loaded = (await store.LoadLatestAsync())!;
        Assert.That(loaded.SkippedManifests!.Select(m => m.Step), Is.EqualTo(new long[] { 20 }));
        Assert.ThrowsAsync<BlobAlreadyExistsException>(() => store.CommitAsync(20, Files(20, 1000)), "a committed step is immutable");

        await store.SetAsideAsync(loaded.SkippedManifests![0]);
        await store.CommitAsync(20, Files(20, 1000));
        var reloaded = (await store.LoadLatestAsync())!;
        Assert.Multiple(() =>
        {
            Assert.That(reloaded.Manifest.Step, Is.EqualTo(20));
            Assert.That(reloaded.Skipped, Is.Empty);
            Assert.That(reloaded.Files["model.safetensors"], Is.EqualTo(Files(20, 1000)["model.safetensors"]));
        });
    }

    [Test]
    public async Task LoadLatest_EveryCheckpointCorrupt_SaysWhatToDoNext()
    {
        var blobs = Open("corrupt" + Guid.NewGuid().ToString("N")[..10]);
        var store = new CheckpointStore(blobs, "trials/t0/checkpoints");
        await store.CommitAsync(10, Files(10, 1000));
        await store.CommitAsync(20, Files(20, 1000));
        foreach (var id in new[] { "step-00000010", "step-00000020" })
            await blobs.PutAsync($"trials/t0/checkpoints/{id}/model.safetensors", new byte[500]);
        var error = Assert.ThrowsAsync<InvalidDataException>(() => store.LoadLatestAsync())!;
        Assert.That(error.Message, Does.Contain("step-00000020: model.safetensors has 500 bytes, manifest says 1000")
            .And.Contain("step-00000010: model.safetensors has 500 bytes")
            .And.Contain("start the trial over from step 0").And.Contain("submit the experiment again"));
    }
}
