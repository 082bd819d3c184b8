using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>Failures injected into a real cluster: a worker process killed in the middle of a trial.</summary>
[Category("Chaos")]
public class ChaosTests
{
    [Test]
    public async Task WorkerKilledMidTrial_TrialResumesOnAnotherWorkerFromCheckpointAndCompletes()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("chaos.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "chaos", steps: 150));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs);
        var first = await cluster.AddWorkerAsync();
        var second = await cluster.AddWorkerAsync();

        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(5));

        // Wait for a committed checkpoint, then kill the worker that runs the trial.
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !Lines(runs).Any(l => l.Contains("\"type\":\"checkpoint\""))) await Task.Delay(100);
        Assert.That(Lines(runs).Any(l => l.Contains("\"type\":\"checkpoint\"")), Is.True, "no checkpoint recorded for chaos-t000");
        var victim = first.Output.Contains("trial chaos-t000") ? first : second;
        var survivor = victim == first ? second : first;
        await victim.DisposeAsync();

        var result = await finished;
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.Serve.Output);
        var events = Lines(runs).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var starts = events.Where(e => e.GetProperty("type").GetString() == "start").ToList();
        var attempts = RunState.Attempts(runs, "chaos-t000");
        var shown = await CliProcess.RunAsync(dir.Path, "status", Path.GetFileName(Directory.GetDirectories(runs).Single()), "--cluster", cluster.Api,
            "--token-file", cluster.TokenFile);
        Assert.Multiple(() =>
        {
            Assert.That(survivor.Output, Does.Contain("trial chaos-t000 (generation 2)"), "the trial moved to the surviving worker");
            Assert.That(starts, Has.Count.EqualTo(2));
            Assert.That(starts[1].GetProperty("resumed_from").GetString(), Does.StartWith("step-"), "resumed from a checkpoint, not from scratch");
            Assert.That(events.Last().GetProperty("outcome").GetString(), Is.EqualTo("completed"));
            // The store keeps both attempts: why the first ended, and where the second started.
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts[0].Reason, Does.Contain("was lost").And.Contain("generation 2"));
            Assert.That(attempts[1].Generation, Is.EqualTo(2));
            Assert.That(shown.Stdout, Does.Contain("attempts").And.Contain("was lost"), "status over the API shows why the first attempt ended");
            Assert.That(attempts[1].ResumedFrom, Does.StartWith("step-"));
            Assert.That(attempts[1].Workers, Is.EqualTo(new[] { System.Text.RegularExpressions.Regex.Match(survivor.Output, @"worker (\S+): joined").Groups[1].Value }));
        });
    }

    [Test]
    public async Task WorkerOfTwoRankTrialKilled_TrialTrainsAgainWithinFifteenSeconds_FromItsCheckpoint()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("fast.yaml");
        // Slow enough (tens of ms a step) that the trial is mid-run when a worker is killed.
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "fast", steps: 600)
            .Replace("checkpoint_every: 3", "checkpoint_every: 20").Replace("input_length: 32", "input_length: 128")
            .Replace("global_batch: 4", "global_batch: 16").Replace("micro_batch: 2", "micro_batch: 8")
            .Replace("  log_every: 1", "  log_every: 1\nresources:\n  workers: 2"));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs);
        var workers = new[] { await cluster.AddWorkerAsync(), await cluster.AddWorkerAsync(), await cluster.AddWorkerAsync() };
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(6));

        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !Lines(runs).Any(l => l.Contains("\"type\":\"checkpoint\""))) await Task.Delay(100);
        var victim = workers.First(w => w.Output.Contains("trial fast-t000"));
        victim.KillHard();
        var killedAt = DateTimeOffset.UtcNow;

        var result = await finished;
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.Serve.Output);
        var events = Lines(runs).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var restart = events.FindLastIndex(e => e.GetProperty("type").GetString() == "start");
        var firstStepAfter = events.Skip(restart).First(e => e.GetProperty("type").GetString() == "step");
        var recovery = firstStepAfter.GetProperty("time").GetDateTimeOffset() - killedAt;
        TestContext.Out.WriteLine($"worker killed -> next completed step: {recovery.TotalSeconds:F1} s");
        var attempts = RunState.Attempts(runs, "fast-t000");
        Assert.Multiple(() =>
        {
            Assert.That(events.Count(e => e.GetProperty("type").GetString() == "start"), Is.EqualTo(2));
            Assert.That(events[restart].GetProperty("resumed_from").GetString(), Does.StartWith("step-"));
            Assert.That(recovery, Is.LessThan(TimeSpan.FromSeconds(15)), "from the kill to the next completed step" + cluster.Serve.Output);
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts[1].Workers, Has.Count.EqualTo(2));
            Assert.That(cluster.Serve.Output, Does.Contain("did not answer within 5 s"), "the silent rank was given up on, not waited for");
        });
    }

    [Test]
    public async Task WorkerOfTwoRankTrialStoppedForThirtySeconds_TrialContinuesWithoutIt_AndNoStepIsLostOrChanged()
    {
        // SIGSTOP: a hung peer, not a dead one. Its sockets stay open and its process exists, so neither its peer's
        // ring nor the operating system says anything; the trial must still go on (the failure detector downs the
        // silent node, or the ring's timeout fires) on the two other workers, and the stopped worker, continued after
        // 30 s, must not disturb it.
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("hung.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, "hung", steps: 400)
            .Replace("checkpoint_every: 3", "checkpoint_every: 20").Replace("input_length: 32", "input_length: 128")
            .Replace("global_batch: 4", "global_batch: 16").Replace("micro_batch: 2", "micro_batch: 8")
            .Replace("  log_every: 1", "  log_every: 1\nresources:\n  workers: 2"));
        var runs = dir.Combine("served");
        await using var cluster = await ServedCluster.StartAsync(runs);
        var workers = new[] { await cluster.AddWorkerAsync(), await cluster.AddWorkerAsync(), await cluster.AddWorkerAsync() };
        using var submit = CliProcess.Start(dir.Path, "submit", path, "--cluster", cluster.Api, "--token-file", cluster.TokenFile);
        var finished = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(6));

        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && !Lines(runs).Any(l => l.Contains("\"type\":\"checkpoint\""))) await Task.Delay(100);
        var victim = workers.First(w => w.Output.Contains("trial hung-t000"));
        victim.Signal("STOP");
        var stoppedAt = DateTimeOffset.UtcNow;
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(30));
        }
        finally
        {
            victim.Signal("CONT");
        }

        var result = await finished;
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output + cluster.Serve.Output);
        var events = Lines(runs).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var restart = events.FindLastIndex(e => e.GetProperty("type").GetString() == "start");
        var firstStepAfter = events.Skip(restart).First(e => e.GetProperty("type").GetString() == "step");
        TestContext.Out.WriteLine($"worker stopped -> next completed step: {(firstStepAfter.GetProperty("time").GetDateTimeOffset() - stoppedAt).TotalSeconds:F1} s");
        var before = StepLosses(events.Take(restart));
        var after = StepLosses(events.Skip(restart));
        var attempts = RunState.Attempts(runs, "hung-t000");
        Assert.Multiple(() =>
        {
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts[1].Workers, Has.Count.EqualTo(2).And.Not.Contain(attempts[0].Workers.Single(w => victim.Output.Contains(w))),
                "the stopped worker is not in the next attempt");
            Assert.That(before.Keys.Concat(after.Keys).Distinct().Order(), Is.EqualTo(Enumerable.Range(1, 400).Select(i => (long)i)), "every step trained");
            Assert.That(events[restart].GetProperty("resumed_from").GetString(), Does.StartWith("step-"));
            var again = before.Keys.Intersect(after.Keys).ToList();
            Assert.That(again.Where(step => before[step] != after[step]), Is.Empty, "steps trained again after the restart give the same loss, bit for bit");
        });
    }

    private static Dictionary<long, double> StepLosses(IEnumerable<JsonElement> events) => events.Where(e => e.GetProperty("type").GetString() == "step")
        .GroupBy(e => e.GetProperty("step").GetInt64()).ToDictionary(g => g.Key, g => g.Last().GetProperty("loss").GetDouble());

    private static List<string> Lines(string runs) => RunState.Events(runs).Select(e => e.GetRawText()).ToList();
}
