using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Training.Orchestrator.Api;
using Training.Orchestrator.State;
using Training.Shared.Spec;
using Training.Shared.Training;

namespace Training.Orchestrator.Cli;

/// <summary>One line of <c>orchestrator list</c>: a run, its overall state and how many of its trials have completed.</summary>
/// <param name="State">running (a trial runs), pending (unfinished, none running: queued or stopped), failed (a trial
/// failed or was skipped), cancelled, or completed (every trial).</param>
public sealed record RunListing(string Id, string Experiment, string State, int TrialsDone, int TrialsTotal, DateTimeOffset StartedAt);

/// <summary>One event of <c>orchestrator logs --json</c> (one JSON object per line): where it comes from and the event itself.</summary>
public sealed record LogLine(string Run, string Trial, long Sequence, string Type, long Step, DateTimeOffset Time, JsonElement Event);

/// <summary>
/// The read commands' shared parts: <c>list</c>, the <c>--json</c> forms of <c>status</c>, <c>list</c>, <c>logs</c> and
/// <c>inspect</c>, and <c>logs --follow</c>, for a runs folder and for an <c>orchestrator serve</c> alike. JSON output is
/// snake_case with the field names of the HTTP API (<c>status --json</c> prints what <c>GET /api/runs[/ID]</c> answers).
/// </summary>
public static class ReadCommands
{
    /// <summary>Indented snake_case JSON, enums as lower-case strings (the API's and the run state's own form).</summary>
    public static JsonSerializerOptions Json => RunStore.Json;

    public static void PrintJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Json));

    public static bool IsFinished(TrialState state) => state is TrialState.Completed or TrialState.Failed or TrialState.Cancelled or TrialState.Skipped;

    /// <summary>A run's state from its trials' (see <see cref="RunListing.State"/>).</summary>
    public static string StateOf(IReadOnlyCollection<TrialState> states) =>
        states.Any(s => s == TrialState.Running) ? "running"
        : states.Any(s => s == TrialState.Pending) ? "pending"
        : states.Any(s => s is TrialState.Failed or TrialState.Skipped) ? "failed"
        : states.Any(s => s == TrialState.Cancelled) ? "cancelled"
        : "completed";

    public static RunListing Listing(string id, string experiment, DateTimeOffset createdAt, IReadOnlyList<TrialStatus> trials)
    {
        var states = trials.Select(t => t.State).ToList();
        return new RunListing(id, experiment, StateOf(states), states.Count(s => s == TrialState.Completed), states.Count, createdAt);
    }

    /// <summary>The exit code a finished run's trials give (as <c>submit</c>): 1 a trial failed, 130 cancelled, else 0.</summary>
    public static int ExitCodeOf(IEnumerable<TrialState> states)
    {
        var list = states.ToList();
        if (list.Any(s => s is TrialState.Failed or TrialState.Skipped)) return 1;
        return list.Any(s => s is TrialState.Cancelled or TrialState.Pending or TrialState.Running) ? 130 : 0;
    }

    /// <summary><c>orchestrator list</c>: newest first, as a table or (<paramref name="json"/>) a JSON array.</summary>
    public static int PrintList(IEnumerable<RunListing> runs, bool json, string where)
    {
        var sorted = runs.OrderByDescending(r => r.StartedAt).ThenByDescending(r => r.Id, StringComparer.Ordinal).ToList();
        if (json)
        {
            PrintJson(sorted);
            return 0;
        }
        if (sorted.Count == 0)
        {
            Console.WriteLine($"no runs {where}");
            return 0;
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumns("run", "experiment", "state", "trials done", "started");
        foreach (var r in sorted)
            table.AddRow(Markup.Escape(r.Id), Markup.Escape(r.Experiment), r.State,
                $"{r.TrialsDone}/{r.TrialsTotal}", r.StartedAt.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>Where <c>logs</c> reads a run from: the run-state store here, or an <c>orchestrator serve</c>'s API.</summary>
    public interface ILogSource
    {
        /// <summary>The run's full id and its trials' current states, in trial order.</summary>
        Task<(string RunId, IReadOnlyList<(string Trial, TrialState State)> Trials)> ReadAsync();

        /// <summary>The trial's events after <paramref name="after"/>, oldest first (possibly one page of them).</summary>
        Task<IReadOnlyList<StoredEvent>> EventsAsync(string runId, string trial, long after);
    }

    public sealed class LocalLogSource(RunRecord run) : ILogSource
    {
        public Task<(string RunId, IReadOnlyList<(string Trial, TrialState State)> Trials)> ReadAsync() =>
            Task.FromResult<(string, IReadOnlyList<(string, TrialState)>)>((run.Id, run.Statuses().Select(s => (s.TrialId, s.State)).ToList()));

        public Task<IReadOnlyList<StoredEvent>> EventsAsync(string runId, string trial, long after) =>
            Task.FromResult(run.Trial(trial).Events(after));
    }

    public sealed class RemoteLogSource(ApiClient client, string runId) : ILogSource
    {
        public async Task<(string RunId, IReadOnlyList<(string Trial, TrialState State)> Trials)> ReadAsync()
        {
            var run = await client.RunAsync(runId);
            // 'latest' or a prefix names one run from the first answer on, even if a newer run is submitted meanwhile.
            runId = run.Id;
            return (run.Id, run.Trials.Select(t => (t.TrialId, t.State)).ToList());
        }

        public async Task<IReadOnlyList<StoredEvent>> EventsAsync(string id, string trial, long after) => await client.EventsAsync(id, trial, after);
    }

    /// <summary>How long <c>logs --follow</c> keeps asking an orchestrator that stopped answering.</summary>
    private static readonly TimeSpan ServerOutage = TimeSpan.FromMinutes(10);

    /// <summary>
    /// <c>orchestrator logs RUN [--trial ID] [--json] [--follow]</c>: every event of the run's trials (or one), prefixed
    /// with the trial when there are several; <paramref name="json"/> prints one JSON object per event and line. With
    /// <paramref name="follow"/> it keeps printing new events, once a second, until every shown trial has finished, then
    /// exits like <c>submit</c> (0 completed, 1 a trial failed, 130 cancelled).
    /// </summary>
    public static async Task<int> LogsAsync(ILogSource source, string? only, bool json, bool follow, CancellationToken cancel = default)
    {
        var (runId, all) = await source.ReadAsync();
        var shown = all.Where(t => only is null || t.Trial == only || t.Trial.EndsWith(only, StringComparison.Ordinal)).Select(t => t.Trial).ToList();
        if (shown.Count == 0)
            throw new ArgumentException($"run {runId} has no trial '{only}'; trials: {string.Join(", ", all.Select(t => t.Trial))} (give one of them, or its end, to --trial)");
        var after = shown.ToDictionary(t => t, _ => 0L);
        var prefix = shown.Count > 1;
        DateTime? unreachableSince = null;
        var lastRound = false;
        while (true)
        {
            IReadOnlyList<(string Trial, TrialState State)> states = all;
            try
            {
                // States first, events second: what was logged before a trial finished is printed before the exit.
                if (follow) (_, states) = await source.ReadAsync();
                foreach (var trial in shown)
                {
                    while (true)
                    {
                        var events = await source.EventsAsync(runId, trial, after[trial]);
                        foreach (var e in events) Print(runId, trial, e, json, prefix);
                        if (events.Count == 0) break;
                        after[trial] = events[^1].Sequence;
                    }
                }
                if (unreachableSince is not null) Console.Error.WriteLine($"run {runId}: the orchestrator answers again");
                unreachableSince = null;
            }
            catch (ArgumentException e) when (follow && e.InnerException is HttpRequestException { StatusCode: null })
            {
                unreachableSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - unreachableSince > ServerOutage)
                    throw new ArgumentException($"the orchestrator has not answered for {ServerOutage.TotalMinutes:0} minutes ({e.Message}); " +
                                                "the run may still finish: follow it again later with the same command", e);
                Console.Error.WriteLine($"run {runId}: the orchestrator does not answer ({e.Message}); trying again");
                await Task.Delay(TimeSpan.FromSeconds(2), cancel);
                continue;
            }
            if (!follow) return 0;
            var mine = states.Where(s => shown.Contains(s.Trial)).Select(s => s.State).ToList();
            if (mine.All(IsFinished))
            {
                // Metrics are committed in batches: one more read after a pause picks up a last batch.
                if (lastRound) return ExitCodeOf(mine);
                lastRound = true;
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancel);
                continue;
            }
            await Task.Delay(TimeSpan.FromSeconds(1), cancel);
        }
    }

    private static void Print(string runId, string trial, StoredEvent e, bool json, bool prefix)
    {
        if (!json)
        {
            Console.WriteLine(prefix ? $"{trial} {e.Body}" : e.Body);
            return;
        }
        JsonElement body;
        try
        {
            body = JsonDocument.Parse(e.Body).RootElement.Clone();
        }
        catch (JsonException)
        {
            body = JsonSerializer.SerializeToElement(e.Body);
        }
        Console.WriteLine(JsonSerializer.Serialize(new LogLine(runId, trial, e.Sequence, e.Type, e.Step, e.Time, body), RunStore.JsonLine));
    }

    /// <summary>One trial of <c>inspect --json</c>.</summary>
    public sealed record InspectedTrial(string Trial, string? Stage, IReadOnlyDictionary<string, string> Overrides, string Arch, string Objective,
        int Layers, int EncoderLayers, int DecoderLayers, int DModel, int Vocab, InspectedParameters Parameters, int EncoderTokens, int DecoderTokens,
        int TokensPerExample, double FlopsPerToken, double? FlopsVsReference, long Steps, int GlobalBatch, double TrainFlops);

    public sealed record InspectedParameters(long Total, long NonEmbedding, long Embedding, long Encoder, long Decoder);

    public sealed record Inspection(string Source, string Experiment, IReadOnlyList<InspectedTrial> Trials);

    /// <summary><c>inspect --json</c>: the numbers of the inspect table, unformatted.</summary>
    public static Inspection Inspect(ExperimentSpec spec, IReadOnlyList<Trial> trials, IReadOnlyList<TrainingBudget> budgets) =>
        new(spec.SourceFile, spec.Name, trials.Select((t, i) =>
        {
            var b = budgets[i];
            var m = t.Spec.Model;
            return new InspectedTrial(t.Id, t.Stage, t.Overrides, SpecWriter.NameOf(m.Architecture), SpecWriter.NameOf(t.Spec.Objective.Kind),
                m.Layers, m.EncoderLayers, m.DecoderLayers, m.DModel, b.Config.VocabSize,
                new InspectedParameters(b.Parameters.Total, b.Parameters.NonEmbedding, b.Parameters.Embedding, b.Parameters.Encoder, b.Parameters.Decoder),
                b.EncoderTokens, b.DecoderTokens, b.TokensPerExample, b.FlopsPerToken,
                t.FlopsReference is { } reference ? b.FlopsPerToken / TrainingBudget.For(reference).FlopsPerToken : null,
                b.Steps, b.GlobalBatch, b.TotalFlops);
        }).ToList());
}
