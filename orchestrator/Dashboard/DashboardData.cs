using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Training.Orchestrator.Cli;
using Training.Orchestrator.State;
using Training.Shared.Spec;
using Training.Shared.Training;

namespace Training.Orchestrator.Dashboard;

/// <summary>
/// What the dashboard pages show, read from the run-state store through <see cref="RunStore"/> and never written: the
/// runs list, a run's trials with min/max/best/final values, downsampled curves, and one trial's attempts, checkpoints
/// and log. Event logs are folded once and then only their new events are read (<see cref="TrialSeries"/>).
/// </summary>
public sealed class DashboardData(RunStore store)
{
    /// <summary>Curve metrics the pages can choose from, and which column of a trial's series each reads.</summary>
    public static readonly IReadOnlyList<string> Metrics = ["loss", "eval_loss", "accuracy", "eval_accuracy", "eval_exact_match", "lr", "grad_norm", "tokens_per_second"];

    public static readonly IReadOnlyList<string> XAxes = ["step", "tokens", "time"];

    /// <summary>All curves of a run page together stay near this many points, whatever the number of trials.</summary>
    public const int RunPagePointBudget = 160_000;

    private readonly ConcurrentDictionary<string, TrialSeries> _series = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (DateTime Written, SpecInfo? Info)> _specs = new(StringComparer.Ordinal);

    public RunStore Store => store;

    private sealed record SpecInfo(Trial Trial, TrainingBudget Budget);

    private readonly ConcurrentDictionary<string, long> _foldedVersion = new(StringComparer.Ordinal);

    /// <summary>The trial's folded events, with whatever was committed since the last look folded in.</summary>
    public TrialSeries Series(TrialRecord trial)
    {
        var series = SeriesOf(trial);
        series.Refresh();
        return series;
    }

    private TrialSeries SeriesOf(TrialRecord trial) =>
        _series.GetOrAdd(trial.Run.Id + "/" + trial.Id, _ => new TrialSeries(after => trial.Events(after)));

    /// <summary>
    /// Folds every trial's new events, unless nothing of the run was written since the last fold: a finished sweep of
    /// 500 trials then costs one query per page instead of one per trial. The version is read first, so a write that
    /// lands during the fold is folded on the next call.
    /// </summary>
    private void RefreshRun(RunRecord run)
    {
        var version = run.Store.Db.Version(run.Id);
        if (_foldedVersion.TryGetValue(run.Id, out var folded) && folded == version) return;
        // The first look at a big run folds every log: spread that over the cores.
        Parallel.ForEach(run.Trials, trial => SeriesOf(trial).Refresh());
        _foldedVersion[run.Id] = version;
    }

    /// <summary>Every trial's status in one read; one read per trial only when some status is missing.</summary>
    private static IReadOnlyDictionary<string, TrialStatus?> Statuses(RunRecord run)
    {
        try { return run.Statuses().ToDictionary(s => s.TrialId, s => (TrialStatus?)s); }
        catch (Exception e) when (e is InvalidDataException or System.Data.Common.DbException)
        {
            return run.Trials.ToDictionary(t => t.Id, ReadStatus);
        }
    }

    /// <summary>The trial's spec and its cost as inspect computes it; null when the spec cannot be read or costed.</summary>
    private SpecInfo? Spec(TrialRecord trial, TrialEntry entry)
    {
        var written = File.Exists(trial.SpecPath) ? File.GetLastWriteTimeUtc(trial.SpecPath) : DateTime.MinValue;
        if (_specs.TryGetValue(trial.SpecPath, out var cached) && cached.Written == written) return cached.Info;
        SpecInfo? info;
        try
        {
            var spec = trial.LoadSpec().Spec;
            info = new SpecInfo(new Trial(entry.Id, entry.Index, spec, entry.Overrides), TrainingBudget.For(spec));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One spec that cannot be read or costed must not take the page down: that trial goes without its
            // architecture row and tokens axis.
            info = null;
        }
        _specs[trial.SpecPath] = (written, info);
        return info;
    }

    public static TrialStatus? ReadStatus(TrialRecord trial)
    {
        try { return trial.ReadStatus(); }
        catch (Exception e) when (e is IOException or JsonException or InvalidDataException or System.Data.Common.DbException) { return null; }
    }

    public IReadOnlyList<RunListItem> Runs() => store.List().Select(run => ListItem(run, Rows(run))).Reverse().ToList();

    private List<TrialRow> Rows(RunRecord run)
    {
        RefreshRun(run);
        var statuses = Statuses(run);
        return run.Trials.Select(t => Row(run, t, statuses.GetValueOrDefault(t.Id))).ToList();
    }

    private static RunListItem ListItem(RunRecord run, IReadOnlyList<TrialRow> rows)
    {
        var best = rows.Where(r => r.BestEvalLoss is not null).MinBy(r => r.BestEvalLoss);
        var (metric, value, trial) = best is not null
            ? ("eval_loss", best.BestEvalLoss, best.Id)
            : rows.Where(r => r.MinLoss is not null).MinBy(r => r.MinLoss) is { } bestTrain ? ("loss", bestTrain.MinLoss, bestTrain.Id) : (null, null, null);
        return new RunListItem(run.Id, run.Manifest.Experiment, RunState(run, rows), rows.Count,
            rows.Count(r => r.State == "completed"), rows.Count(r => r.State == "running"), rows.Count(r => r.State == "failed"),
            rows.Sum(r => r.ComputeSeconds), metric, value, trial, run.Manifest.CreatedAt);
    }

    private static string RunState(RunRecord run, IReadOnlyList<TrialRow> rows)
    {
        if (rows.Any(r => r.State == "running")) return run.CancelRequested ? "cancelling" : "running";
        if (rows.Any(r => r.State == "failed")) return "failed";
        if (rows.Any(r => r.State == "cancelled")) return "cancelled";
        if (rows.Any(r => r.State == "pending")) return "pending";
        return "completed";
    }

    public RunRecord? FindRun(string id) => StoragePaths.IsSafeName(id) ? store.FindExact(id) : null;

    public RunView Run(RunRecord run)
    {
        var rows = Rows(run);
        Parallel.ForEach(run.Manifest.Trials, entry => Spec(run.Trial(entry.Id), entry));
        var specs = run.Manifest.Trials.Select(e => Spec(run.Trial(e.Id), e)).OfType<SpecInfo>().ToList();
        var (columns, cells) = InspectCommand.Cells(specs.Select(s => s.Trial).ToList(), specs.Select(s => s.Budget).ToList());
        var sweepKeys = run.Manifest.Trials.SelectMany(t => t.Overrides.Keys).Distinct().ToList();
        return new RunView(ListItem(run, rows), run.CancelRequested, sweepKeys, rows, new InspectTable(columns, cells), Metrics, XAxes);
    }

    /// <summary>A trial's table row from its status and its series as last folded.</summary>
    private TrialRow Row(RunRecord run, TrialRecord trial, TrialStatus? status)
    {
        var entry = run.Entry(trial.Id);
        var s = SeriesOf(trial).Summary;
        return new TrialRow(trial.Id, entry.Index, entry.Overrides, status?.State.ToString().ToLowerInvariant() ?? "unknown",
            s.Attempts, status?.Step ?? 0, status?.TotalSteps ?? 0, status?.Parameters ?? 0,
            s.EvalLoss.Min, s.EvalLoss.Last, s.Loss.Min, s.Loss.Max, s.Loss.Last,
            s.TokensPerSecond.Mean, s.TokensPerSecond.Max, s.ComputeSeconds, status?.Error,
            s.ExactMatch.Max, s.ExactMatch.Last);
    }

    public TrialView? Trial(RunRecord run, string trialId)
    {
        var entry = run.Manifest.Trials.FirstOrDefault(t => t.Id == trialId);
        if (entry is null) return null;
        var trial = run.Trial(trialId);
        var s = Series(trial);
        var row = Row(run, trial, ReadStatus(trial));
        var spec = File.Exists(trial.SpecPath) ? File.ReadAllText(trial.SpecPath) : null;
        lock (s.Gate)
        {
            // Checkpoints in the run folder can be checked for their manifest; elsewhere (--storage) only the event is known.
            var local = run.Manifest.Storage is null;
            var checkpoints = s.Checkpoints.Select(c => new CheckpointView(c.Step, c.Id, c.Time,
                local ? File.Exists(Path.Combine(trial.Dir, "checkpoints", c.Id, "manifest.json")) : null)).ToList();
            var attempts = s.Attempts.Select(a => new AttemptView(a.Number, a.StartStep, a.ResumedFrom, a.StartedAt, a.Seconds, a.Outcome ?? "running", a.EndStep, a.Error)).ToList();
            var warnings = s.Warnings.Select(w => new WarningView(w.Step, w.Message, w.Time)).ToList();
            return new TrialView(run.Id, row, attempts, checkpoints, warnings, trial.Run.Store.Db.TailEvents(trial.Run.Id, trial.Id, 300).Select(e => e.Body).ToList(), spec, Metrics, XAxes);
        }
    }

    /// <summary>
    /// Every trial's <paramref name="metric"/> against <paramref name="xAxis"/>, min/max-downsampled so the whole page
    /// holds about <see cref="RunPagePointBudget"/> points.
    /// </summary>
    public CurveSet Curves(RunRecord run, string metric, string xAxis, IReadOnlyList<string>? trialIds = null, int? buckets = null)
    {
        if (!Metrics.Contains(metric)) throw new ArgumentException($"metric must be one of {string.Join(", ", Metrics)}");
        if (!XAxes.Contains(xAxis)) throw new ArgumentException($"x must be one of {string.Join(", ", XAxes)}");
        var entries = run.Manifest.Trials.Where(t => trialIds is null || trialIds.Contains(t.Id)).ToList();
        var perTrial = buckets ?? Math.Clamp(RunPagePointBudget / 2 / Math.Max(1, entries.Count), 50, 2000);
        var columns = new List<(string Trial, double[] X, double[] Y)>(entries.Count);
        var raw = 0L;
        var wholeRun = trialIds is null;
        if (wholeRun) RefreshRun(run);
        foreach (var entry in entries)
        {
            var trial = run.Trial(entry.Id);
            var s = wholeRun ? SeriesOf(trial) : Series(trial);
            var tokensPerStep = xAxis == "tokens" && Spec(trial, entry) is { } info ? (double)info.Budget.TokensPerExample * info.Budget.GlobalBatch : double.NaN;
            double[] xs, ys;
            lock (s.Gate)
            {
                var eval = metric.StartsWith("eval_", StringComparison.Ordinal);
                var steps = eval ? s.EvalSteps : s.Steps;
                var times = eval ? s.EvalTime : s.StepTime;
                var values = metric switch
                {
                    "loss" => s.Loss, "eval_loss" => s.EvalLoss, "accuracy" => s.Accuracy, "eval_accuracy" => s.EvalAccuracy, "eval_exact_match" => s.EvalExactMatch,
                    "lr" => s.LearningRate, "grad_norm" => s.GradNorm, _ => s.TokensPerSecond,
                };
                raw += values.Count;
                xs = new double[steps.Count];
                ys = new double[steps.Count];
                for (var i = 0; i < xs.Length; i++)
                {
                    xs[i] = xAxis switch { "step" => steps[i], "tokens" => steps[i] * tokensPerStep, _ => times[i] };
                    ys[i] = values[i];
                }
            }
            columns.Add((entry.Id, xs, ys));
        }
        // One x range for all curves, so they share one grid.
        var (min, max) = (double.PositiveInfinity, double.NegativeInfinity);
        foreach (var (_, xs, ys) in columns)
            for (var i = 0; i < xs.Length; i++)
                if (double.IsFinite(xs[i]) && double.IsFinite(ys[i])) (min, max) = (Math.Min(min, xs[i]), Math.Max(max, xs[i]));
        if (min > max) (min, max) = (0.0, 0.0);
        var curves = columns.Select(c => new Curve(c.Trial, Downsampler.MinMaxOnGrid(c.X, c.Y, min, max, perTrial))).ToList();
        return new CurveSet(metric, xAxis, perTrial, raw, Downsampler.Grid(min, max, perTrial), curves);
    }

    /// <summary>Changes whenever anything of the run is written: a status, an event, a cancel (what live updates watch).</summary>
    public static string Signature(RunRecord run) => run.Store.Db.Version(run.Id).ToString("x", CultureInfo.InvariantCulture);

    /// <summary>Changes whenever a run is added or anything of one is written.</summary>
    public string RunsSignature()
    {
        if (store.List().Count == 0) return "0";
        var hash = new HashCode();
        foreach (var (id, version) in store.Db.Versions().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.Add(id);
            hash.Add(version);
        }
        return hash.ToHashCode().ToString("x8", CultureInfo.InvariantCulture);
    }

}

public sealed record RunListItem(string Id, string Experiment, string State, int Trials, int Completed, int Running, int Failed,
    double ComputeSeconds, string? BestMetric, double? BestValue, string? BestTrial, DateTimeOffset Started);

public sealed record TrialRow(string Id, int Index, IReadOnlyDictionary<string, string> Overrides, string State, int Attempts,
    long Step, long TotalSteps, long Parameters, double? BestEvalLoss, double? FinalEvalLoss, double? MinLoss, double? MaxLoss,
    double? FinalLoss, double? TokensPerSecond, double? MaxTokensPerSecond, double ComputeSeconds, string? Error,
    double? BestExactMatch = null, double? FinalExactMatch = null);

public sealed record InspectTable(IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows);

public sealed record RunView(RunListItem Run, bool CancelRequested, IReadOnlyList<string> SweepKeys, IReadOnlyList<TrialRow> Trials,
    InspectTable Inspect, IReadOnlyList<string> Metrics, IReadOnlyList<string> XAxes);

public sealed record AttemptView(int Number, long StartStep, string? ResumedFrom, DateTimeOffset StartedAt, double Seconds, string Outcome, long? EndStep, string? Error);

public sealed record CheckpointView(long Step, string Id, DateTimeOffset Time, bool? Committed);

public sealed record WarningView(long Step, string Message, DateTimeOffset Time);

public sealed record TrialView(string Run, TrialRow Trial, IReadOnlyList<AttemptView> Attempts, IReadOnlyList<CheckpointView> Checkpoints,
    IReadOnlyList<WarningView> Warnings, IReadOnlyList<string> Log, string? SpecYaml, IReadOnlyList<string> Metrics, IReadOnlyList<string> XAxes);

/// <param name="Y">The trial's values on <see cref="CurveSet.Grid"/> (NaN where it has none).</param>
public sealed record Curve(string Trial, double[] Y);

/// <param name="RawPoints">Logged values the curves were cut down from (what the downsampling saved).</param>
public sealed record CurveSet(string Metric, string X, int Buckets, long RawPoints, double[] Grid, IReadOnlyList<Curve> Curves);
