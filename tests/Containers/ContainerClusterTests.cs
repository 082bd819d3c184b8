using System.Diagnostics;
using System.Text.Json;
using NUnit.Framework;
using Training.Shared.Storage;
using Training.Tests.Support;
using AzuriteService = Training.Tests.Support.Azurite;

namespace Training.Tests.Containers;

/// <summary>
/// The images from infra/containers, run with podman on host networking: an orchestrator container and worker
/// containers configured by environment alone, data and checkpoints in Azurite (a native process on loopback). The
/// 2-way data-parallel quickstart runs to completion through a `podman kill` of one worker, then a worker stopped
/// with SIGTERM (`podman stop`) drains. Nothing secret shows in logs, status, stored specs, images or the API's JSON.
/// </summary>
[Category("Containers")]
[Category("Azurite")]
[NonParallelizable]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class ContainerClusterTests
{
    private const string Secret = "container-test-secret-7f3a";
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..8];
    private readonly List<string> _containers = new();
    private TempDirectory _dir = null!;
    private AzuriteService _azurite = null!;

    [OneTimeSetUp]
    public void BuildImages()
    {
        _azurite = AzuriteService.Start();
        var build = Run("bash", Path.Combine(RunEvents.RepositoryRoot(), "infra", "containers", "build-images.sh"), "worker", "orchestrator");
        Assert.That(build.ExitCode, Is.EqualTo(0), build.Output);
        TestContext.Progress.WriteLine(build.Output);
    }

    [OneTimeTearDown]
    public void StopAzurite() => _azurite.Dispose();

    [SetUp]
    public void SetUp() => _dir = new TempDirectory();

    [TearDown]
    public void TearDown()
    {
        foreach (var name in _containers) Run("podman", "rm", "-f", "-t", "0", name);
        _containers.Clear();
        _dir.Dispose();
    }

    [Test]
    [CancelAfter(900_000)]
    public async Task QuickstartDataParallel_InContainers_SurvivesAKilledWorker_AndAStoppedWorkerDrains()
    {
        var azurite = _azurite;
        var container = "containers" + _suffix;
        var data = BlobStores.Open(BlobLocation.Parse($"azure://{AzuriteService.Account}/{container}"), azurite.Environment);
        var sample = Path.Combine(RunEvents.RepositoryRoot(), "data", "sample");
        foreach (var file in Directory.GetFiles(sample, "*.parquet", SearchOption.AllDirectories))
            await data.PutAsync($"sample/{Path.GetRelativePath(sample, file)}", await File.ReadAllBytesAsync(file));
        var experiment = _dir.Combine("quickstart-dp.yaml");
        File.WriteAllText(experiment, File.ReadAllText(Path.Combine(RunEvents.RepositoryRoot(), "experiments", "quickstart-dp.yaml"))
            .Replace("train: ../data/sample/train", $"train: azure://{AzuriteService.Account}/{container}/sample/train")
            .Replace("eval: ../data/sample/eval", $"eval: azure://{AzuriteService.Account}/{container}/sample/eval"));

        var runs = _dir.Combine("runs");
        Directory.CreateDirectory(runs);
        Run("chown", "10001", runs); // the images' unprivileged user writes the run record
        var (clusterPort, httpPort) = (AzuriteService.FreePort(), AzuriteService.FreePort());
        var credentials = new Dictionary<string, string>
        {
            ["TRAINING_CLUSTER_SECRET"] = Secret,
            ["TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING"] = azurite.ConnectionString,
        };
        StartContainer("orchestrator", "orchestrator", new Dictionary<string, string>(credentials)
        {
            ["ORCHESTRATOR_PORT"] = clusterPort.ToString(),
            ["ORCHESTRATOR_HTTP_PORT"] = httpPort.ToString(),
            ["ORCHESTRATOR_STORAGE"] = $"azure://{AzuriteService.Account}/{container}/runs",
        }, ["-v", $"{runs}:/var/lib/training/runs"]);
        await WaitForLog("orchestrator", "submit with:", TimeSpan.FromSeconds(60));
        Dictionary<string, string> Worker() => new(credentials)
        {
            ["WORKER_SEED"] = $"127.0.0.1:{clusterPort}", ["WORKER_THREADS"] = "1", ["WORKER_JOIN_TIMEOUT"] = "60", ["WORKER_DRAIN_TIMEOUT"] = "60",
        };
        StartContainer("worker-a", "worker", Worker());
        StartContainer("worker-b", "worker", Worker());
        await WaitForLog("worker-a", "joined", TimeSpan.FromSeconds(60));
        await WaitForLog("worker-b", "joined", TimeSpan.FromSeconds(60));

        var api = $"127.0.0.1:{httpPort}";
        var token = Path.Combine(runs, ".api-token");
        using var submit = CliProcess.Start(_dir.Path, "submit", experiment, "--cluster", api, "--token-file", token);
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(10));
        await WaitUntil(() => RunEvents.Read(runs).Any(e => RunEvents.Type(e) == "checkpoint") || submitted.IsCompleted, TimeSpan.FromMinutes(5));
        Assert.That(submitted.IsCompleted, Is.False, $"the run ended before a worker could be killed:\n{(submitted.IsCompleted ? (await submitted).Output : "")}{Logs()}");
        Assert.That(Run("podman", "kill", Name("worker-a")).ExitCode, Is.EqualTo(0));
        StartContainer("worker-c", "worker", Worker());
        var result = await submitted;
        var events = RunEvents.Read(runs);
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + Logs());
            Assert.That(events.Count(e => RunEvents.Type(e) == "start"), Is.EqualTo(2), "started once more after the kill");
            Assert.That(events.Where(e => RunEvents.Type(e) == "start").Last().GetProperty("resumed_from").GetString(), Does.StartWith("step-"));
            Assert.That(events.Last(e => RunEvents.Type(e) == "finish").GetProperty("outcome").GetString(), Is.EqualTo("completed"));
        });

        // A second, shorter run; `podman stop` (SIGTERM) on one of its workers: it checkpoints, hands the trial on and exits 0.
        var shorter = _dir.Combine("quickstart-dp-short.yaml");
        File.WriteAllText(shorter, File.ReadAllText(experiment).Replace("steps: 240", "steps: 80"));
        using var second = CliProcess.Start(_dir.Path, "submit", shorter, "--cluster", api, "--token-file", token);
        var secondDone = CliProcess.FinishAsync(second, TimeSpan.FromMinutes(10));
        StartContainer("worker-d", "worker", Worker());
        await WaitUntil(() => Directory.GetDirectories(runs).Length == 2 && StepsOf(Directory.GetDirectories(runs).Max()!) >= 20, TimeSpan.FromMinutes(5));
        var stop = Run("podman", "stop", "-t", "90", Name("worker-b"));
        Assert.That(stop.ExitCode, Is.EqualTo(0), stop.Output);
        var exit = Run("podman", "inspect", "--format", "{{.State.ExitCode}}", Name("worker-b"));
        var drained = await secondDone;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Output.Trim(), Is.EqualTo("0"), "the stopped worker exits 0");
            Assert.That(Log("worker-b"), Does.Contain("draining"));
            Assert.That(drained.ExitCode, Is.EqualTo(0), drained.Output + Logs());
        });

        // No secret anywhere a user or an image reader can see.
        var status = await CliProcess.RunAsync(_dir.Path, "status", "--cluster", api, "--token-file", token);
        var apiJson = await new HttpClient { DefaultRequestHeaders = { { "Authorization", "Bearer " + File.ReadAllText(token).Trim() } } }
            .GetStringAsync($"http://{api}/api/runs");
        var stored = string.Join("\n", Directory.GetFiles(runs, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) != ".api-token").Select(File.ReadAllText));
        var images = Run("podman", "image", "inspect", "localhost/training-worker:dev", "localhost/training-orchestrator:dev").Output
                     + Run("podman", "history", "--no-trunc", "localhost/training-worker:dev").Output;
        foreach (var (what, text) in new[] { ("logs", Logs()), ("status", status.Output), ("API JSON", apiJson), ("run folder", stored), ("images", images) })
        {
            Assert.That(text, Does.Not.Contain(Secret), $"the cluster secret is in the {what}");
            Assert.That(text, Does.Not.Contain(AzuriteService.AccountKey), $"the storage key is in the {what}");
        }
    }

    private string Name(string role) => $"training-test-{role}-{_suffix}";

    private void StartContainer(string role, string image, IReadOnlyDictionary<string, string> environment, IReadOnlyList<string>? extra = null)
    {
        var args = new List<string> { "run", "-d", "--name", Name(role), "--network", "host", "--no-healthcheck" };
        // Values travel by name (-e NAME) from this process's environment, so they never appear on a command line.
        foreach (var name in environment.Keys) args.AddRange(["-e", name]);
        args.AddRange(extra ?? []);
        args.Add($"localhost/training-{image}:dev");
        var result = Run("podman", environment, args.ToArray());
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        _containers.Add(Name(role));
    }

    private string Log(string role) => Run("podman", "logs", Name(role)).Output;

    private string Logs() => string.Join("\n", _containers.Select(c => $"--- {c}:\n{Run("podman", "logs", c).Output}"));

    private async Task WaitForLog(string role, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Log(role).Contains(text)) return;
            await Task.Delay(500);
        }
        Assert.Fail($"{Name(role)} never logged '{text}':\n{Logs()}");
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !condition()) await Task.Delay(500);
    }

    private static long StepsOf(string runDir) =>
        RunEvents.Read(runDir).Where(e => RunEvents.Type(e) == "step").Select(e => e.GetProperty("step").GetInt64()).DefaultIfEmpty(0).Max();

    private sealed record Result(int ExitCode, string Output);

    private static Result Run(string program, params string[] args) => Run(program, null, args);

    private static Result Run(string program, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) info.Environment[k] = v;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result + stderr.Result);
    }
}
