using System.Diagnostics;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Storage.Azurite;

/// <summary>
/// Workers that share nothing with the submitter: each runs in its own empty folder, as another user (when the tests
/// run as root) who cannot even list the folder holding the run record and the local copy of the corpus. They get the
/// seed address, the cluster secret and the storage credentials; the trial's data and checkpoints live in Azurite.
/// </summary>
[Category("Azurite")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class ShareNothingClusterTests
{
    private const int Nobody = 65534;
    private const int Steps = 240;

    private TempDirectory _dir = null!;
    private readonly List<TempDirectory> _workerFolders = new();

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown()
    {
        foreach (var folder in _workerFolders) folder.Dispose();
        _workerFolders.Clear();
        _dir.Dispose();
    }

    [Test]
    public async Task TwoWorkersWithOnlyStorageCredentials_TrainFromBlobShards_AndResumeAfterCancelContinuesBitForBit()
    {
        var container = "nothing" + Guid.NewGuid().ToString("N")[..12];
        var credentials = new Dictionary<string, string>
        {
            ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = SharedAzurite.Instance.ConnectionString,
        };
        var corpus = _dir.Combine("corpus");
        TestCorpus.Write(corpus);
        var data = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{container}"), SharedAzurite.Instance.Environment);
        foreach (var file in Directory.GetFiles(corpus, "*.parquet", SearchOption.AllDirectories))
            await data.PutAsync($"fineweb/{Path.GetRelativePath(corpus, file)}", await File.ReadAllBytesAsync(file));
        Directory.Delete(corpus, recursive: true);

        var experiment = _dir.Combine("apart.yaml");
        File.WriteAllText(experiment, TestCorpus.TinyExperiment(_dir.Path, "apart", steps: Steps, extra: "resources:\n  workers: 2\n  threads: 1")
            .Replace("train: train", $"train: azure://{AzuriteService.Account}/{container}/fineweb/train")
            .Replace("eval: eval", $"eval: azure://{AzuriteService.Account}/{container}/fineweb/eval/*.parquet")
            .Replace("kind: byte", "kind: char")
            .Replace("eval_every: 0", "eval_every: 40")
            .Replace("checkpoint_every: 3", "checkpoint_every: 25"));

        // Only the submitter's user may enter the test folder: the run record and everything else stay out of reach.
        var separateUser = Environment.IsPrivilegedProcess;
        if (separateUser) File.SetUnixFileMode(_dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var runs = _dir.Combine("served");
        var storage = $"azure://{AzuriteService.Account}/{container}/runs";
        await using var cluster = await ServedCluster.StartAsync(runs, extraArgs: ["--storage", storage], environment: credentials);
        var workers = new List<WatchedProcess>();
        for (var i = 0; i < 2; i++)
        {
            var folder = new TempDirectory();
            _workerFolders.Add(folder);
            File.SetUnixFileMode(folder.Path, (UnixFileMode)0x1FF);
            var environment = new Dictionary<string, string>(credentials) { ["HOME"] = folder.Path, ["DOTNET_CLI_HOME"] = folder.Path };
            workers.Add(await cluster.AddWorkerAsync(environment: environment, workingDirectory: folder.Path, userId: separateUser ? Nobody : null));
        }
        if (separateUser)
        {
            Assert.That(UserIdOf(workers[0].Pid), Is.EqualTo(Nobody), "the worker runs as the other user");
            Assert.That(await CanList(Nobody, runs), Is.False, "the other user can list the run folder: the test would prove nothing");
        }

        string Context() => $"serve:\n{cluster.AllServeOutput}\nworker 0:\n{workers[0].Output}\nworker 1:\n{workers[1].Output}";

        using var submit = CliProcess.Start(_dir.Path, "submit", experiment, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(4));
        await WaitUntil(() => RunEvents.Read(runs).Count(e => RunEvents.Type(e) == "step") >= 40 || submitted.IsCompleted, TimeSpan.FromMinutes(3));
        if (submitted.IsCompleted) Assert.Fail($"the run ended before it could be cancelled:\n{(await submitted).Output}\n{Context()}");
        var runDir = Directory.GetDirectories(runs).Single();
        var runId = Path.GetFileName(runDir);
        var cancel = await CliProcess.RunAsync(_dir.Path, "cancel", runId, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(cancel.ExitCode, Is.EqualTo(0), cancel.Output);
        var cancelled = await submitted;
        Assert.That(cancelled.ExitCode, Is.EqualTo(130), cancelled.Output + Context());

        var resumed = await CliProcess.RunAsync(_dir.Path, "resume", runId, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(resumed.ExitCode, Is.EqualTo(0), resumed.Output + Context());
        Assert.That(resumed.Stdout, Does.Not.Contain("] cancelled"), "the follower never reads the cancelled attempt's outcome as the resume's");

        var trialPrefix = $"runs/{runId}/trials/apart-t000/checkpoints";
        var blobs = await data.ListAsync(trialPrefix);
        var events = RunEvents.Read(runDir);
        var starts = events.Where(e => RunEvents.Type(e) == "start").ToList();
        var stoppedAt = events.Take(events.FindLastIndex(e => RunEvents.Type(e) == "start")).Where(e => RunEvents.Type(e) == "step").Max(e => e.GetProperty("step").GetInt64());
        Assert.Multiple(() =>
        {
            Assert.That(starts, Has.Count.EqualTo(2));
            Assert.That(stoppedAt, Is.LessThan(Steps), "cancelled before the end");
            Assert.That(starts[1].GetProperty("step").GetInt64(), Is.EqualTo(stoppedAt), "the resume started where the cancel checkpointed");
            Assert.That(events.Last(e => RunEvents.Type(e) == "finish").GetProperty("step").GetInt64(), Is.EqualTo(Steps));
            Assert.That(blobs, Does.Contain($"{trialPrefix}/{CheckpointStore.IdFor(Steps)}/manifest.json"), "the final checkpoint is in Azurite");
            Assert.That(blobs, Does.Contain($"{trialPrefix}/tokenizer.json").And.Contain($"{trialPrefix}/spec.yaml"),
                "the trial's artifacts are beside its checkpoints");
            Assert.That(Directory.Exists(Path.Combine(runDir, "trials", "apart-t000", "checkpoints")), Is.False,
                "nothing was written into the run folder's checkpoints");
            foreach (var output in new[] { cluster.AllServeOutput, workers[0].Output, workers[1].Output, cancelled.Output, resumed.Output })
                Assert.That(output, Does.Not.Contain(AzuriteService.AccountKey), "a credential appeared in the output");
        });
        var spec = Encoding.UTF8.GetString((await data.GetAsync($"{trialPrefix}/spec.yaml"))!);
        Assert.That(spec, Does.Contain($"azure://{AzuriteService.Account}/{container}/fineweb/train"), "the stored spec names the data by URI");

        // The same experiment uninterrupted on the same workers: every step of the cancelled-and-resumed run has
        // exactly the reference's loss.
        var reference = await CliProcess.RunAsync(_dir.Path, "submit", experiment, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(reference.ExitCode, Is.EqualTo(0), reference.Output + Context());
        var expected = Losses(RunEvents.Read(Directory.GetDirectories(runs).Single(d => d != runDir)));
        var recorded = Losses(events);
        Assert.That(recorded.Keys, Is.EquivalentTo(Enumerable.Range(1, Steps).Select(s => (long)s)), "every step was recorded once");
        Assert.That(recorded.Where(kv => expected[kv.Key] != kv.Value).Select(kv => kv.Key).Take(5), Is.Empty,
            "steps whose loss differs from the uninterrupted run");
    }

    private static int UserIdOf(int pid) =>
        int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);

    private static async Task<bool> CanList(int userId, string folder)
    {
        var info = new ProcessStartInfo("setpriv") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { $"--reuid={userId}", $"--regid={userId}", "--clear-groups", "--", "ls", folder }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        await process.WaitForExitAsync();
        return process.ExitCode == 0;
    }

    private static Dictionary<long, double> Losses(List<JsonElement> events) => events.Where(e => RunEvents.Type(e) == "step")
        .GroupBy(e => e.GetProperty("step").GetInt64()).ToDictionary(g => g.Key, g => g.Last().GetProperty("loss").GetDouble());

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !condition()) await Task.Delay(200);
    }
}
