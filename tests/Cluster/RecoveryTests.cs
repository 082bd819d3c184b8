using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>
/// The coordinator and its workers outlive each other with real processes: serve killed and started again continues
/// its run without a `resume`, and a worker told to stop (SIGTERM) checkpoints at its next step and hands its trial on.
/// </summary>
[Category("Chaos")]
public class RecoveryTests
{
    private const int Steps = 1500;

    /// <param name="backend">Where serve keeps run state: the default SQLite file, or a real PostgreSQL server (a shared
    /// deployment), which outlives serve as it would in production.</param>
    [TestCase("sqlite")]
    [TestCase("postgres")]
    public async Task ServeKilledMidRun_RestartedServeContinuesTheTrialWithoutResume_AndRecomputedStepsMatch(string backend)
    {
        using var dir = new TempDirectory();
        using var postgres = backend == "postgres" ? PostgresServer.Start() : null;
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("recover.yaml");
        // Slow enough (tens of ms a step) that the worker is still training when the cluster notices serve is gone.
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "recover", steps: Steps)
            .Replace("checkpoint_every: 3", "checkpoint_every: 40").Replace("input_length: 32", "input_length: 128")
            .Replace("global_batch: 4", "global_batch: 16").Replace("micro_batch: 2", "micro_batch: 8"));
        var runs = dir.Combine("served");
        string[] stateArgs = [];
        if (postgres is not null)
        {
            var state = postgres.Uri(postgres.CreateDatabase());
            stateArgs = ["--state", state];
            RunState.Use(runs, global::Training.Orchestrator.State.StateLocation.Parse(state));
        }
        await using var cluster = await ServedCluster.StartAsync(runs, extraArgs: stateArgs);
        var worker = await cluster.AddWorkerAsync();
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(8));

        await WaitUntil(() => RunEvents.Read(runs).Any(e => RunEvents.Type(e) == "checkpoint"), TimeSpan.FromMinutes(2), "a committed checkpoint");
        var runDir = Directory.GetDirectories(runs).Single();
        cluster.Serve.KillHard();
        await cluster.Serve.WaitForExitAsync(TimeSpan.FromSeconds(20));
        var stepsBeforeKill = RunEvents.Read(runDir).Where(e => RunEvents.Type(e) == "step").Max(e => e.GetProperty("step").GetInt64());
        await Task.Delay(TimeSpan.FromSeconds(3));
        await cluster.RestartServeAsync();

        // No `resume`: the restarted coordinator finds the unfinished run, the worker rejoins, the trial continues.
        await worker.WaitForAsync("rejoined", TimeSpan.FromMinutes(2));
        // The submitter lost its server mid-run: it waited for the restarted one and reports the real outcome.
        var result = await submitted;
        var events = RunEvents.Read(runDir);
        var starts = events.Where(e => RunEvents.Type(e) == "start").ToList();
        Assert.That(events.Any(e => RunEvents.Type(e) == "finish"), Is.True, $"no finish recorded; submit said:\n{result.Output}\n{cluster.AllServeOutput}\n{worker.Output}");
        var finish = events.Last(e => RunEvents.Type(e) == "finish");
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.AllServeOutput + worker.Output);
            Assert.That(result.Output, Does.Contain("the orchestrator does not answer").And.Contain("answers again"), result.Output);
            Assert.That(cluster.Serve.Output, Does.Contain("recovering run"), cluster.AllServeOutput);
            Assert.That(starts, Has.Count.EqualTo(2), "one start before the kill, one after the restart");
            Assert.That(starts[1].GetProperty("resumed_from").GetString(), Does.StartWith("step-"), "continued from a checkpoint");
            Assert.That(starts[1].GetProperty("step").GetInt64(), Is.InRange(stepsBeforeKill, Steps - 1), "continued mid-run, from no earlier than the last step recorded");
            Assert.That(finish.GetProperty("outcome").GetString(), Is.EqualTo("completed"), cluster.AllServeOutput);
            Assert.That(finish.GetProperty("step").GetInt64(), Is.EqualTo(Steps));
            Assert.That(cluster.Serve.Output, Does.Contain(postgres is null ? "run state: sqlite:" : $"run state: postgres://postgres@127.0.0.1:{postgres.Port}/"));
            // The attempt the kill cut short is closed when the restarted coordinator places the trial again.
            Assert.That(RunState.Attempts(runs, "recover-t000").Select(a => a.Outcome), Is.EqualTo(new[] { "interrupted", "completed" }));
        });

        // The same experiment, uninterrupted, on the same cluster: every step recorded by the interrupted run (before
        // the kill and after the restart) has exactly the reference's loss.
        var reference = await CliProcess.RunAsync(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(reference.ExitCode, Is.EqualTo(0), reference.Output);
        var referenceDir = Directory.GetDirectories(runs).Single(d => d != runDir);
        var expected = Losses(RunEvents.Read(referenceDir));
        var recorded = Losses(events);
        Assert.That(recorded.Count, Is.GreaterThan(Steps / 4));
        Assert.That(recorded.Where(kv => expected[kv.Key] != kv.Value).Select(kv => kv.Key).Take(5), Is.Empty,
            "steps whose loss differs from the uninterrupted run");
    }

    [Test]
    public async Task WorkerGetsSigterm_ItCheckpointsAtTheNextStepAndTheTrialMovesWithoutRedoingSteps()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("drain.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "drain", steps: 400).Replace("checkpoint_every: 3", "checkpoint_every: 1000"));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs);
        var first = await cluster.AddWorkerAsync();
        var second = await cluster.AddWorkerAsync();
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(5));

        await WaitUntil(() => RunEvents.Read(runs).Count(e => RunEvents.Type(e) == "step") >= 20, TimeSpan.FromMinutes(2), "20 steps");
        var victim = first.Output.Contains("trial drain-t000") ? first : second;
        var survivor = victim == first ? second : first;
        victim.Signal("TERM");
        var exit = await victim.WaitForExitAsync(TimeSpan.FromSeconds(90));

        var result = await finished;
        var events = RunEvents.Read(runs);
        var starts = events.Where(e => RunEvents.Type(e) == "start").ToList();
        var secondStart = events.FindLastIndex(e => RunEvents.Type(e) == "start");
        var stepsBeforeMove = events.Take(secondStart).Where(e => RunEvents.Type(e) == "step").Max(e => e.GetProperty("step").GetInt64());
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(0), victim.Output);
            Assert.That(victim.Output, Does.Contain("draining"), victim.Output);
            Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.Serve.Output);
            Assert.That(survivor.Output, Does.Contain("trial drain-t000 (generation 2)"), "the trial moved to the other worker");
            Assert.That(starts, Has.Count.EqualTo(2));
            // checkpoint_every is larger than the run: the only checkpoint before the move is the drain's own.
            Assert.That(starts[1].GetProperty("step").GetInt64(), Is.EqualTo(stepsBeforeMove), "steps were redone after the drain");
            Assert.That(events.Last().GetProperty("outcome").GetString(), Is.EqualTo("completed"));
        });
    }

    [Test]
    public async Task ServeStoppedGracefullyAndStartedAgain_IdleWorkerRejoinsAndRunsTheNextSubmission()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("after.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "after", steps: 6));
        await using var cluster = await ServedCluster.StartAsync(dir.Combine("served"));
        var worker = await cluster.AddWorkerAsync();
        cluster.Serve.Signal("TERM");
        await cluster.Serve.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await cluster.RestartServeAsync();
        await worker.WaitForAsync("rejoined", TimeSpan.FromSeconds(90));

        var result = await CliProcess.RunAsync(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.AllServeOutput + worker.Output);
        Assert.That(result.Output, Does.Contain("completed"));
    }

    [Test]
    public async Task ServeAndTheTrialsWorkerKilledTogether_RestartedServeContinuesOnTheOtherWorker_RecomputedStepsMatch()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("both.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "both", steps: 400)
            .Replace("checkpoint_every: 3", "checkpoint_every: 40").Replace("input_length: 32", "input_length: 128")
            .Replace("global_batch: 4", "global_batch: 16").Replace("micro_batch: 2", "micro_batch: 8"));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs);
        var first = await cluster.AddWorkerAsync();
        var second = await cluster.AddWorkerAsync();
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(8));

        await WaitUntil(() => RunEvents.Read(runs).Any(e => RunEvents.Type(e) == "checkpoint"), TimeSpan.FromMinutes(2), "a committed checkpoint");
        // Some steps past the checkpoint, so the restart computes them again.
        await WaitUntil(() => RunEvents.Read(runs).Count(e => RunEvents.Type(e) == "step") >= 50, TimeSpan.FromMinutes(2), "50 steps");
        var victim = first.Output.Contains("trial both-t000") ? first : second;
        var survivor = victim == first ? second : first;
        cluster.Serve.KillHard();
        victim.KillHard();
        await cluster.Serve.WaitForExitAsync(TimeSpan.FromSeconds(20));
        await Task.Delay(TimeSpan.FromSeconds(2));
        await cluster.RestartServeAsync();

        var result = await submitted;
        var events = RunEvents.Read(runs);
        var restart = events.FindLastIndex(e => RunEvents.Type(e) == "start");
        var before = Losses(events.Take(restart).ToList());
        var after = Losses(events.Skip(restart).ToList());
        var both = before.Keys.Intersect(after.Keys).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.AllServeOutput + survivor.Output);
            Assert.That(events.Count(e => RunEvents.Type(e) == "start"), Is.EqualTo(2), cluster.AllServeOutput);
            Assert.That(events[restart].GetProperty("resumed_from").GetString(), Does.StartWith("step-"), "continued from a checkpoint");
            Assert.That(survivor.Output, Does.Contain("trial both-t000"), "the surviving worker took the trial");
            Assert.That(events.Last(e => RunEvents.Type(e) == "finish").GetProperty("step").GetInt64(), Is.EqualTo(400));
            Assert.That(RunState.Attempts(runs, "both-t000").Select(a => a.Outcome), Is.EqualTo(new[] { "interrupted", "completed" }));
            // Steps trained before the kill and again after it (past the checkpoint) give the same loss, bit for bit.
            Assert.That(both, Is.Not.Empty, "some steps were computed twice");
            Assert.That(both.Where(step => before[step] != after[step]), Is.Empty, "steps whose recomputed loss differs");
        });
    }

    private static Dictionary<long, double> Losses(List<JsonElement> events) => events.Where(e => RunEvents.Type(e) == "step")
        .GroupBy(e => e.GetProperty("step").GetInt64()).ToDictionary(g => g.Key, g => g.Last().GetProperty("loss").GetDouble());

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout, string what, Func<string>? context = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (condition()) return;
            await Task.Delay(200);
        }
        Assert.Fail($"timed out after {timeout} waiting for {what}\n{context?.Invoke()}");
    }
}
