using Spectre.Console;
using Training.Orchestrator.Api;
using Training.Orchestrator.State;
using Training.Shared.Spec;

namespace Training.Orchestrator.Cli;

/// <summary>The CLI against an <c>orchestrator serve</c>: submit, follow progress, status, cancel, resume.</summary>
public static class RemoteCluster
{
    /// <param name="detach">Return once the run is accepted and queued, printing how to follow it.</param>
    public static async Task<int> SubmitAsync(string address, string? token, ExperimentSpec spec, IReadOnlyList<Trial> trials, string experimentYaml,
        bool detach = false)
    {
        using var client = new ApiClient(address, token);
        var request = new SubmitRequest(spec.Name, spec.SourceFile, experimentYaml,
            trials.Select(t => new SubmittedTrial(t.Id, t.Index, SpecWriter.ToYaml(t.Spec), t.Overrides)).ToList());
        var accepted = await client.SubmitAsync(request);
        Console.WriteLine($"run {accepted.RunId}: {accepted.Trials} trial(s) submitted to {address}");
        if (detach)
        {
            Console.WriteLine($"queued; follow it with: orchestrator logs {accepted.RunId} --follow --cluster {address}");
            Console.WriteLine($"see its trials with: orchestrator status {accepted.RunId} --cluster {address}");
            return 0;
        }
        return await FollowAsync(client, accepted.RunId);
    }

    public static async Task<int> ResumeAsync(string address, string? token, string runId, ResumeRequest? request = null)
    {
        using var client = new ApiClient(address, token);
        var run = await client.ResumeAsync(runId, request);
        Console.WriteLine($"run {run.Id}: resuming on {address}" + (request?.Set is { Count: > 0 } set ? $" with {string.Join(", ", set)}" : ""));
        return await FollowAsync(client, run.Id);
    }

    /// <summary>How long a follower keeps asking an orchestrator that stopped answering (a restart takes seconds).</summary>
    private static readonly TimeSpan ServerOutage = TimeSpan.FromMinutes(10);

    /// <summary>Polls the run once a second, printing each trial's new progress, until every trial has finished. An
    /// orchestrator that restarts continues the run by itself, so an unreachable server is waited for, not fatal.</summary>
    private static async Task<int> FollowAsync(ApiClient client, string runId)
    {
        var lastStep = new Dictionary<string, long>();
        DateTime? unreachableSince = null;
        while (true)
        {
            RunSummary run;
            try
            {
                run = await client.RunAsync(runId);
                if (unreachableSince is not null) Console.WriteLine($"run {runId}: the orchestrator answers again");
                unreachableSince = null;
            }
            catch (ArgumentException e) when (e.InnerException is HttpRequestException { StatusCode: null })
            {
                if (unreachableSince is null)
                {
                    unreachableSince = DateTime.UtcNow;
                    Console.WriteLine($"run {runId}: the orchestrator does not answer ({e.Message}); waiting up to {ServerOutage.TotalMinutes:0} minutes for it (the run continues when it is back)");
                }
                else if (DateTime.UtcNow - unreachableSince > ServerOutage)
                {
                    Console.Error.WriteLine($"orchestrator: the server has not answered for {ServerOutage.TotalMinutes:0} minutes; " +
                                            $"the run may still finish: check with `orchestrator status {runId} --cluster ADDRESS`");
                    return 1;
                }
                await Task.Delay(1000);
                continue;
            }
            foreach (var t in run.Trials)
            {
                if (lastStep.TryGetValue(t.TrialId, out var seen) && seen == t.Step) continue;
                lastStep[t.TrialId] = t.Step;
                Console.WriteLine($"[{t.TrialId}] {t.State.ToString().ToLowerInvariant()} step {t.Step}/{t.TotalSteps} loss {t.Loss?.ToString("F4") ?? "-"} eval {t.EvalLoss?.ToString("F4") ?? "-"}");
            }
            if (run.Trials.All(t => t.State is TrialState.Completed or TrialState.Failed or TrialState.Cancelled or TrialState.Skipped))
            {
                AnsiConsole.Write(Table(run));
                if (run.Trials.Any(t => t.State is TrialState.Failed or TrialState.Skipped)) return 1;
                return run.Trials.Any(t => t.State == TrialState.Cancelled) ? 130 : 0;
            }
            await Task.Delay(1000);
        }
    }

    public static async Task<int> StatusAsync(string address, string? token, string? runId, bool json = false)
    {
        using var client = new ApiClient(address, token);
        if (json)
        {
            if (runId is null) ReadCommands.PrintJson(await client.RunsAsync());
            else ReadCommands.PrintJson(await client.RunAsync(runId));
            return 0;
        }
        var runs = runId is null ? await client.RunsAsync() : [await client.RunAsync(runId)];
        if (runs.Count == 0) Console.WriteLine($"no runs on {address}");
        foreach (var run in runs)
        {
            AnsiConsole.Write(Table(run));
            // One run asked for: where each trial ran and why each attempt ended.
            if (runId is null || run.Attempts is not { } attempts) continue;
            var rows = run.Trials.SelectMany(t => (attempts.GetValueOrDefault(t.TrialId) ?? []).Select(a => (t.TrialId, a)));
            if (ProgressDisplay.Attempts(rows) is { } table) AnsiConsole.Write(table);
        }
        return 0;
    }

    public static async Task<int> CancelAsync(string address, string? token, string runId)
    {
        using var client = new ApiClient(address, token);
        var run = await client.CancelAsync(runId);
        Console.WriteLine($"run {run.Id}: cancel requested; running trials checkpoint and stop at their next step");
        return 0;
    }

    private static Table Table(RunSummary run)
    {
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape($"run {run.Id}"))
            .AddColumns("trial", "state", "step", "train loss", "eval loss", "tok/s");
        foreach (var t in run.Trials)
            table.AddRow(Markup.Escape(t.TrialId), t.State.ToString().ToLowerInvariant(), $"{t.Step}/{t.TotalSteps}",
                t.Loss?.ToString("F4") ?? "-", t.EvalLoss?.ToString("F4") ?? "-", t.TokensPerSecond?.ToString("N0") ?? "-");
        return table;
    }
}
