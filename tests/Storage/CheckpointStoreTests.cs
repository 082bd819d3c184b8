using System.Text;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;

namespace Training.Tests.Storage;

public class CheckpointStoreTests
{
    private TempDirectory _dir = null!;
    private LocalFolderBlobStore _blobs = null!;
    private CheckpointStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        _blobs = new LocalFolderBlobStore(_dir.Path);
        _store = new CheckpointStore(_blobs, "trials/t0/checkpoints");
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static Dictionary<string, byte[]> Files(string tag) => new()
    {
        ["model.safetensors"] = Encoding.UTF8.GetBytes($"model {tag}"),
        ["state.json"] = Encoding.UTF8.GetBytes($"{{\"tag\":\"{tag}\"}}"),
    };

    [Test]
    public async Task LoadLatest_AfterTwoCommits_ReturnsNewestWithItsFiles()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        var loaded = await _store.LoadLatestAsync();
        Assert.Multiple(() =>
        {
            Assert.That(loaded!.Manifest.Step, Is.EqualTo(20));
            Assert.That(Encoding.UTF8.GetString(loaded.Files["model.safetensors"]), Is.EqualTo("model b"));
            Assert.That(loaded.Skipped, Is.Empty);
        });
        var pointer = await _blobs.GetAsync("trials/t0/checkpoints/latest");
        Assert.That(Encoding.UTF8.GetString(pointer!), Is.EqualTo("step-00000020"));
    }

    [Test]
    public async Task LoadLatest_NewestFileCorrupted_FallsBackToPrevious()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        var path = Path.Combine(_dir.Path, "trials/t0/checkpoints/step-00000020/model.safetensors");
        var bytes = File.ReadAllBytes(path);
        bytes[0] ^= 0xFF;
        File.WriteAllBytes(path, bytes);

        var loaded = await _store.LoadLatestAsync();
        Assert.Multiple(() =>
        {
            Assert.That(loaded!.Manifest.Step, Is.EqualTo(10));
            Assert.That(loaded.Skipped, Has.Count.EqualTo(1));
            Assert.That(loaded.Skipped[0], Does.Contain("step-00000020").And.Contain("SHA-256"));
        });
    }

    [Test]
    public async Task LoadLatest_NewestFileTruncatedOrMissing_FallsBackAndSaysWhy()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        await _store.CommitAsync(30, Files("c"));
        File.WriteAllText(Path.Combine(_dir.Path, "trials/t0/checkpoints/step-00000030/state.json"), "{");
        File.Delete(Path.Combine(_dir.Path, "trials/t0/checkpoints/step-00000020/model.safetensors"));

        var loaded = await _store.LoadLatestAsync();
        Assert.That(loaded!.Manifest.Step, Is.EqualTo(10));
        Assert.That(loaded.Skipped, Has.Some.Contains("bytes, manifest says"));
        Assert.That(loaded.Skipped, Has.Some.Contains("missing"));
    }

    [Test]
    public async Task LoadLatest_FilesWithoutManifest_AreNotACheckpoint()
    {
        await _store.CommitAsync(10, Files("a"));
        // An upload that died before its manifest: files present, no manifest.
        await _blobs.PutAsync("trials/t0/checkpoints/step-00000020/model.safetensors", Encoding.UTF8.GetBytes("partial"));
        var loaded = await _store.LoadLatestAsync();
        Assert.That(loaded!.Manifest.Step, Is.EqualTo(10));
    }

    [Test]
    public async Task LoadLatest_NothingCommitted_ReturnsNull()
    {
        Assert.That(await _store.LoadLatestAsync(), Is.Null);
    }

    [Test]
    public async Task LoadLatest_EveryCheckpointCorrupt_ThrowsListingEach()
    {
        await _store.CommitAsync(10, Files("a"));
        File.WriteAllText(Path.Combine(_dir.Path, "trials/t0/checkpoints/step-00000010/state.json"), "{\"tag\":\"x\"}");
        var e = Assert.ThrowsAsync<InvalidDataException>(() => _store.LoadLatestAsync());
        Assert.That(e!.Message, Does.Contain("step-00000010").And.Contain("state.json"));
    }

    [Test]
    public async Task Commit_SameStepTwice_RefusesToReplaceTheManifest()
    {
        await _store.CommitAsync(10, Files("a"));
        Assert.ThrowsAsync<BlobAlreadyExistsException>(() => _store.CommitAsync(10, Files("b")));
    }

    [Test]
    public async Task Prune_KeepTwo_DeletesOldestCompletely()
    {
        foreach (var step in new[] { 10, 20, 30, 40 }) await _store.CommitAsync(step, Files(step.ToString()));
        await _store.PruneAsync(2);
        var left = await _store.ListAsync();
        Assert.That(left.Select(m => m.Step), Is.EqualTo(new[] { 30L, 40L }));
        Assert.That(await _blobs.ListAsync("trials/t0/checkpoints/step-00000010"), Is.Empty);
    }

    [Test]
    public async Task Put_CreateOnlyOverExisting_ThrowsAndKeepsOriginal()
    {
        await _blobs.PutAsync("a/b", Encoding.UTF8.GetBytes("first"), createOnly: true);
        Assert.ThrowsAsync<BlobAlreadyExistsException>(() => _blobs.PutAsync("a/b", Encoding.UTF8.GetBytes("second"), createOnly: true));
        Assert.That(Encoding.UTF8.GetString((await _blobs.GetAsync("a/b"))!), Is.EqualTo("first"));
        Assert.That(Directory.GetFiles(Path.Combine(_dir.Path, "a")), Has.Length.EqualTo(1), "no temporary file is left behind");
    }

    [TestCase("../escape")]
    [TestCase("/absolute")]
    [TestCase("a//b")]
    public void Put_PathOutsideRoot_IsRejected(string path)
    {
        Assert.ThrowsAsync<ArgumentException>(() => _blobs.PutAsync(path, new byte[] { 1 }));
    }

    [TestCase(0)]
    [TestCase(-3)]
    public async Task Prune_KeepZeroOrLess_NeverDeletesNewestCommitted(int keep)
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        await _store.PruneAsync(keep);
        var left = await _store.ListAsync();
        Assert.That(left.Select(m => m.Step), Is.EqualTo(new[] { 20L }));
        Assert.That((await _store.LoadLatestAsync())!.Manifest.Step, Is.EqualTo(20));
    }

    [Test]
    public async Task Prune_LatestPointerNamesOlderCheckpoint_KeepsThatOneToo()
    {
        await _store.CommitAsync(10, Files("a"));
        await _store.CommitAsync(20, Files("b"));
        await _store.CommitAsync(30, Files("c"));
        // As after a crash between a manifest and the pointer: latest still names an older checkpoint.
        await _blobs.PutAsync("trials/t0/checkpoints/latest", Encoding.UTF8.GetBytes("step-00000020"));
        await _store.PruneAsync(1);
        Assert.That((await _store.ListAsync()).Select(m => m.Step), Is.EqualTo(new[] { 20L, 30L }));
    }
}
