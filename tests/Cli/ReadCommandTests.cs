using System.Text.Json;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cli;

/// <summary>
/// <c>list</c>, <c>--json</c> on the read commands, <c>logs --follow</c> and <c>submit --detach</c>: the real orchestrator
/// program as a child process, on a runs folder (embedded cluster) and against a real <c>orchestrator serve</c>.
/// </summary>
public class ReadCommandTests
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

    private string WriteExperiment(string name, int steps, string extra = "")
    {
        var path = _dir.Combine(name + ".yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(_dir.Path, name: name, steps: steps, extra: extra));
        return path;
    }

    private static JsonElement ParseJson(CliResult result)
    {
        Assert.That(result.ExitCode, Is.EqualTo(0), result.Output);
        return JsonDocument.Parse(result.Stdout).RootElement;
    }

    private static string RunIdOf(CliResult submit) =>
        System.Text.RegularExpressions.Regex.Match(submit.Stdout, @"run (\S+):").Groups[1].Value;

    [Test]
    public async Task ListStatusLogsInspect_OnARunsFolder_PrintTablesAndJson()
    {
        var sweep = WriteExperiment("first", 3, """
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 3.0e-3]
            """);
        var first = await CliProcess.RunAsync(_dir.Path, "submit", sweep);
        Assert.That(first.ExitCode, Is.EqualTo(0), first.Output);
        // --follow is the default, and may be said.
        var second = await CliProcess.RunAsync(_dir.Path, "submit", WriteExperiment("second", 2), "--follow");
        Assert.That(second.ExitCode, Is.EqualTo(0), second.Output);
        Assert.That(second.Stdout, Does.Contain("[second-t000] step 2/2"));
        var (firstId, secondId) = (RunIdOf(first), RunIdOf(second));

        var table = await CliProcess.RunAsync(_dir.Path, "list");
        Assert.That(table.ExitCode, Is.EqualTo(0), table.Output);
        Assert.That(table.Stdout, Does.Contain(firstId).And.Contain(secondId).And.Contain("completed").And.Contain("2/2").And.Contain("1/1"));
        Assert.That(table.Stdout.IndexOf(secondId, StringComparison.Ordinal), Is.LessThan(table.Stdout.IndexOf(firstId, StringComparison.Ordinal)), "newest first");

        var list = ParseJson(await CliProcess.RunAsync(_dir.Path, "list", "--json"));
        Assert.Multiple(() =>
        {
            Assert.That(list.GetArrayLength(), Is.EqualTo(2));
            Assert.That(list[0].GetProperty("id").GetString(), Is.EqualTo(secondId), "newest first");
            Assert.That(list[1].GetProperty("id").GetString(), Is.EqualTo(firstId));
            Assert.That(list[1].GetProperty("experiment").GetString(), Is.EqualTo("first"));
            Assert.That(list[1].GetProperty("state").GetString(), Is.EqualTo("completed"));
            Assert.That(list[1].GetProperty("trials_done").GetInt32(), Is.EqualTo(2));
            Assert.That(list[1].GetProperty("trials_total").GetInt32(), Is.EqualTo(2));
            Assert.That(list[1].GetProperty("started_at").GetDateTimeOffset(), Is.LessThanOrEqualTo(list[0].GetProperty("started_at").GetDateTimeOffset()));
        });

        var status = ParseJson(await CliProcess.RunAsync(_dir.Path, "status", firstId[..8], "--json"));
        Assert.Multiple(() =>
        {
            Assert.That(status.GetProperty("id").GetString(), Is.EqualTo(firstId), "a prefix names the run");
            var trials = status.GetProperty("trials").EnumerateArray().ToList();
            Assert.That(trials.Select(t => t.GetProperty("trial_id").GetString()), Is.EqualTo(new[] { "first-t000", "first-t001" }));
            Assert.That(trials.Select(t => t.GetProperty("state").GetString()), Is.All.EqualTo("completed"));
            Assert.That(trials.Select(t => t.GetProperty("step").GetInt64()), Is.All.EqualTo(3));
            Assert.That(trials.Select(t => t.GetProperty("overrides").GetProperty("optimizer.lr").GetString()), Is.Unique, "each trial's sweep value");
            Assert.That(status.GetProperty("attempts").GetProperty("first-t000")[0].GetProperty("outcome").GetString(), Is.EqualTo("completed"));
        });
        var all = ParseJson(await CliProcess.RunAsync(_dir.Path, "status", "--json"));
        Assert.That(all.EnumerateArray().Select(r => r.GetProperty("id").GetString()), Is.EquivalentTo(new[] { firstId, secondId }));

        var logs = await CliProcess.RunAsync(_dir.Path, "logs", firstId, "--trial", "t001", "--json");
        Assert.That(logs.ExitCode, Is.EqualTo(0), logs.Output);
        var lines = logs.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(lines.Select(l => l.GetProperty("run").GetString()), Is.All.EqualTo(firstId));
            Assert.That(lines.Select(l => l.GetProperty("trial").GetString()), Is.All.EqualTo("first-t001"));
            var steps = lines.Where(l => l.GetProperty("type").GetString() == "step").ToList();
            Assert.That(steps.Select(l => l.GetProperty("event").GetProperty("step").GetInt64()), Is.EqualTo(new long[] { 1, 2, 3 }));
            Assert.That(steps.Select(l => l.GetProperty("event").GetProperty("loss").GetDouble()), Is.All.GreaterThan(0));
            Assert.That(lines.Select(l => l.GetProperty("sequence").GetInt64()), Is.Ordered.Ascending);
            Assert.That(lines[^1].GetProperty("type").GetString(), Is.EqualTo("finish"));
        });

        var noTrial = await CliProcess.RunAsync(_dir.Path, "logs", firstId, "--trial", "t009");
        Assert.That(noTrial.ExitCode, Is.EqualTo(2), noTrial.Output);
        Assert.That(noTrial.Stderr, Does.Contain("no trial 't009'").And.Contain("first-t000, first-t001"));

        var inspect = ParseJson(await CliProcess.RunAsync(_dir.Path, "inspect", sweep, "--json"));
        Assert.Multiple(() =>
        {
            Assert.That(inspect.GetProperty("experiment").GetString(), Is.EqualTo("first"));
            var trials = inspect.GetProperty("trials").EnumerateArray().ToList();
            Assert.That(trials, Has.Count.EqualTo(2));
            Assert.That(trials[0].GetProperty("arch").GetString(), Is.EqualTo("encoder-decoder"));
            Assert.That(trials[0].GetProperty("d_model").GetInt32(), Is.EqualTo(32));
            var parameters = trials[0].GetProperty("parameters");
            Assert.That(parameters.GetProperty("total").GetInt64(),
                Is.EqualTo(parameters.GetProperty("non_embedding").GetInt64() + parameters.GetProperty("embedding").GetInt64()));
            Assert.That(trials[0].GetProperty("flops_per_token").GetDouble(), Is.GreaterThan(0));
            Assert.That(trials[0].GetProperty("train_flops").GetDouble(), Is.EqualTo(trials[0].GetProperty("flops_per_token").GetDouble()
                * trials[0].GetProperty("tokens_per_example").GetInt32() * 4 * 3).Within(1e-6).Percent);
        });
        // The trained model has exactly the parameters inspect predicted.
        Assert.That(inspect.GetProperty("trials")[0].GetProperty("parameters").GetProperty("total").GetInt64(),
            Is.EqualTo(status.GetProperty("trials")[0].GetProperty("parameters").GetInt64()));
    }

    [Test]
    public async Task LogsFollow_OnARunsFolder_PrintsNewEventsUntilTheTrialFinishes()
    {
        using var submit = CliProcess.Start(_dir.Path, "submit", WriteExperiment("follow", 40));
        var submitted = CliProcess.FinishAsync(submit, TimeSpan.FromMinutes(3));
        // Follow from "another terminal" once the trial has started training.
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && RunState.Steps(_dir.Combine("runs")) < 1) await Task.Delay(100);
        Assert.That(RunState.Steps(_dir.Combine("runs")), Is.LessThan(40), "the trial was still training when following began");
        var follow = await CliProcess.RunAsync(_dir.Path, "logs", "latest", "--follow");
        var done = await submitted;

        Assert.That(done.ExitCode, Is.EqualTo(0), done.Output);
        Assert.That(follow.ExitCode, Is.EqualTo(0), follow.Output);
        var lines = follow.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(lines.Count(l => l.Contains("\"type\":\"step\"")), Is.EqualTo(40), "every step, the ones after following began included");
            Assert.That(lines[^1], Does.Contain("\"type\":\"finish\"").And.Contain("\"outcome\":\"completed\""));
            Assert.That(lines, Is.EqualTo(RunState.EventLines(_dir.Combine("runs"), "follow-t000")), "what is stored, once each, in order");
        });
    }

    [Test]
    public async Task SubmitDetach_WithoutCluster_IsRefusedWithWhatToDo()
    {
        var result = await CliProcess.RunAsync(_dir.Path, "submit", WriteExperiment("local", 2), "--detach");
        Assert.That(result.ExitCode, Is.EqualTo(2), result.Output);
        Assert.That(result.Stderr, Does.Contain("--detach needs --cluster").And.Contain("orchestrator serve"));
        Assert.That(Directory.Exists(_dir.Combine("runs")), Is.False, "nothing ran");
    }

    [Test]
    [NonParallelizable]
    public async Task SubmitDetach_ToAServedCluster_ReturnsQueued_ThenLogsFollowListAndStatusReadIt()
    {
        await using var cluster = await ServedCluster.StartAsync(_dir.Combine("served"), dataRoot: _dir.Path);
        await cluster.AddWorkerAsync();
        string[] remote = ["--cluster", cluster.Api, "--token-file", cluster.TokenFile];

        var detached = await CliProcess.RunAsync(_dir.Path, ["submit", WriteExperiment("remote", 30), "--detach", .. remote]);
        Assert.That(detached.ExitCode, Is.EqualTo(0), detached.Output + cluster.Serve.Output);
        var id = RunIdOf(detached);
        var stateAtReturn = RunState.Status(Path.Combine(cluster.RunsDirectory, id), "remote-t000").GetProperty("state").GetString();
        Assert.Multiple(() =>
        {
            Assert.That(stateAtReturn, Is.AnyOf("pending", "running"), "submit --detach returned before the run finished");
            Assert.That(detached.Stdout, Does.Contain($"orchestrator logs {id} --follow --cluster {cluster.Api}"));
            Assert.That(detached.Stdout, Does.Not.Contain("step 30/30"), "no progress is followed");
        });

        var follow = await CliProcess.RunAsync(_dir.Path, ["logs", id, "--follow", "--json", .. remote]);
        Assert.That(follow.ExitCode, Is.EqualTo(0), follow.Output + cluster.Serve.Output);
        var events = follow.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(events.Count(e => e.GetProperty("type").GetString() == "step"), Is.EqualTo(30));
            Assert.That(events[^1].GetProperty("event").GetProperty("outcome").GetString(), Is.EqualTo("completed"));
            Assert.That(events.Select(e => e.GetProperty("sequence").GetInt64()), Is.Unique.And.Ordered.Ascending);
        });
        // The same log without --follow, read through the API, is what the runs folder holds.
        var plain = await CliProcess.RunAsync(_dir.Path, ["logs", id, .. remote]);
        Assert.That(plain.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(RunState.EventLines(Path.Combine(cluster.RunsDirectory, id), "remote-t000")));

        var list = ParseJson(await CliProcess.RunAsync(_dir.Path, ["list", "--json", .. remote]));
        Assert.That(list.GetArrayLength(), Is.EqualTo(1));
        Assert.That(list[0].GetProperty("id").GetString(), Is.EqualTo(id));
        Assert.That(list[0].GetProperty("state").GetString(), Is.EqualTo("completed"));
        Assert.That(list[0].GetProperty("trials_done").GetInt32(), Is.EqualTo(1));

        var status = ParseJson(await CliProcess.RunAsync(_dir.Path, ["status", id, "--json", .. remote]));
        Assert.That(status.GetProperty("trials")[0].GetProperty("state").GetString(), Is.EqualTo("completed"));
        Assert.That(status.GetProperty("trials")[0].GetProperty("step").GetInt64(), Is.EqualTo(30));

        var noTrial = await CliProcess.RunAsync(_dir.Path, ["logs", id, "--trial", "t7", .. remote]);
        Assert.That(noTrial.ExitCode, Is.EqualTo(2), noTrial.Output);
        Assert.That(noTrial.Stderr, Does.Contain("no trial 't7'").And.Contain("remote-t000"));
    }
}
