using System.Globalization;
using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>Real processes on loopback: an orchestrator, worker processes, the CLI.</summary>
[Category("Cluster")]
public class ClusterTests
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

    private string Experiment(string name, int steps, int workers, string extra = "")
    {
        var yaml = TestCorpus.TinyExperiment(_dir.Path, name, steps, extra)
            .Replace("  log_every: 1", "  log_every: 1\nresources:\n  workers: " + workers.ToString(CultureInfo.InvariantCulture));
        var path = _dir.Combine($"{name}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static List<JsonElement> Metrics(string runsDirectory, string trial) => RunState.Events(runsDirectory, trial);

    private static List<double> StepLosses(string runs, string trial) =>
        Metrics(runs, trial).Where(e => e.GetProperty("type").GetString() == "step").Select(e => e.GetProperty("loss").GetDouble()).ToList();

    [Test]
    public async Task Submit_TwoWorkerTrial_MatchesOneWorkerLosses()
    {
        var one = await CliProcess.RunAsync(_dir.Path, "submit", Experiment("single", steps: 6, workers: 1), "--runs", _dir.Combine("runs1"));
        var two = await CliProcess.RunAsync(_dir.Path, "submit", Experiment("pair", steps: 6, workers: 2), "--runs", _dir.Combine("runs2"));
        Assert.That(one.ExitCode, Is.EqualTo(0), one.Output);
        Assert.That(two.ExitCode, Is.EqualTo(0), two.Output);
        Assert.That(two.Stdout, Does.Contain("2 worker process(es)"));

        var single = StepLosses(_dir.Combine("runs1"), "single-t000");
        var pair = StepLosses(_dir.Combine("runs2"), "pair-t000");
        Assert.That(pair, Has.Count.EqualTo(6));
        // Same examples, same dropout masks, gradients averaged over the same global batch: only the float
        // summation order differs.
        Assert.That(pair, Is.EqualTo(single).Within(1e-4));
        Assert.That(pair[^1], Is.LessThan(pair[0]));
    }

    [Test]
    public async Task Serve_SweepOfThreeTrialsOnTwoWorkers_QueuesAndCompletes()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served"));
        await cluster.AddWorkerAsync();
        await cluster.AddWorkerAsync();
        var path = Experiment("sweep", steps: 8, workers: 1, extra: """
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3]
            """);
        File.WriteAllText(path, File.ReadAllText(path).Replace("resources:\n  workers: 1", "resources:\n  workers: 1\n  max_concurrent_trials: 3"));

        var submit = await CliProcess.RunAsync(_dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output + cluster.Serve.Output);

        var starts = new Dictionary<string, DateTimeOffset>();
        var finishes = new Dictionary<string, DateTimeOffset>();
        foreach (var trial in new[] { "sweep-t000", "sweep-t001", "sweep-t002" })
        {
            var events = Metrics(_dir.Combine("served"), trial);
            starts[trial] = events.First(e => e.GetProperty("type").GetString() == "start").GetProperty("time").GetDateTimeOffset();
            var finish = events.Last(e => e.GetProperty("type").GetString() == "finish");
            Assert.That(finish.GetProperty("outcome").GetString(), Is.EqualTo("completed"), trial);
            finishes[trial] = finish.GetProperty("time").GetDateTimeOffset();
        }
        // Two workers, three one-worker trials: the last to start waited for one of the first two to finish.
        var last = starts.OrderBy(kv => kv.Value).Last();
        var firstFinish = finishes.Where(kv => kv.Key != last.Key).Min(kv => kv.Value);
        Assert.That(last.Value, Is.GreaterThanOrEqualTo(firstFinish.AddSeconds(-1)), "the third trial was queued until a worker was free");
    }

    [Test]
    public async Task Serve_WorkerJoiningMidExperiment_GetsWork()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served"));
        var first = await cluster.AddWorkerAsync();
        var path = Experiment("late", steps: 400, workers: 1, extra: """
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 2.0e-3]
            """);
        File.WriteAllText(path, File.ReadAllText(path).Replace("resources:\n  workers: 1", "resources:\n  workers: 1\n  max_concurrent_trials: 2"));
        using var submit = CliProcess.Start(_dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(4));

        // One trial runs on the only worker; the other waits in the queue. A second worker joins and takes it.
        await first.WaitForAsync("rank 0/1 of trial late-t000", TimeSpan.FromMinutes(1));
        var late = await cluster.AddWorkerAsync();
        await late.WaitForAsync("rank 0/1 of trial late-t001", TimeSpan.FromMinutes(1));
        var result = await finished;
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        Assert.That(first.Output, Does.Not.Contain("trial late-t001"), "the queued trial went to the worker that joined, not the busy one");
    }

    [Test]
    public async Task Serve_ElasticTrialWithFewerFreeWorkers_StartsWithMinWorkersAndCompletes()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served"));
        var only = await cluster.AddWorkerAsync();
        var path = Experiment("elastic", steps: 4, workers: 2);
        File.WriteAllText(path, File.ReadAllText(path).Replace("resources:\n  workers: 2", "resources:\n  workers: 2\n  min_workers: 1"));

        var submit = await CliProcess.RunAsync(_dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output + cluster.Serve.Output);
        Assert.That(only.Output, Does.Contain("rank 0/1 of trial elastic-t000"), "one free worker: a group of one");
    }

    [Test]
    public async Task Worker_WithWrongSecret_IsRefused()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served"));
        var intruder = await cluster.AddWorkerAsync(secret: "not-the-secret", waitForJoin: false, joinTimeoutSeconds: 8);
        var exit = await intruder.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(3));
            Assert.That(intruder.Output, Does.Contain("could not join the cluster").And.Contain("secret"));
        });
        // The right secret still joins.
        var worker = await cluster.AddWorkerAsync();
        Assert.That(worker.Output, Does.Contain("joined"));
    }
}
