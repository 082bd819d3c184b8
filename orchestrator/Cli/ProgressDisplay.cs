using System.Globalization;
using Spectre.Console;
using Training.Orchestrator.State;
using Training.Shared.Messages;

namespace Training.Orchestrator.Cli;

/// <summary>
/// Shows trials' progress: a live table on an interactive terminal, one line per logged step otherwise
/// (CI, pipes, files), and a summary table at the end.
/// </summary>
public sealed class ProgressDisplay
{
    private sealed class Row
    {
        public long Step, Total, StartStep;
        public double? Loss, EvalLoss, EvalAccuracy, TokensPerSecond;
        public string State = "pending";
        public DateTimeOffset Started = DateTimeOffset.UtcNow;
    }

    private readonly Dictionary<string, Row> _rows = new();
    private readonly object _gate = new();
    private readonly bool _interactive;

    public ProgressDisplay(IEnumerable<string> trialIds)
    {
        foreach (var id in trialIds) _rows[id] = new Row();
        _interactive = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;
    }

    private static string F(double? value, string format) => value?.ToString(format, CultureInfo.InvariantCulture) ?? "-";

    public static string Eta(long step, long startStep, long total, TimeSpan elapsed)
    {
        var done = step - startStep;
        if (done <= 0) return "-";
        var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / done * (total - step));
        return remaining.TotalHours >= 1 ? $"{(int)remaining.TotalHours}h{remaining.Minutes:D2}m" : $"{remaining.Minutes}m{remaining.Seconds:D2}s";
    }

    public void Observe(TrainingEvent e)
    {
        lock (_gate)
        {
            if (!_rows.TryGetValue(e.TrialId, out var row)) _rows[e.TrialId] = row = new Row();
            string? line = null;
            switch (e)
            {
                case TrialStarted s:
                    row.State = "running";
                    row.Step = row.StartStep = s.StartStep;
                    row.Total = s.TotalSteps;
                    row.Started = DateTimeOffset.UtcNow;
                    line = s.ResumedFrom is null
                        ? $"[{e.TrialId}] started: {s.Parameters:N0} parameters, {s.TotalSteps} steps" +
                          (s.InitializedFrom is null ? "" : $", weights from {s.InitializedFrom}")
                        : $"[{e.TrialId}] resumed from {s.ResumedFrom} at step {s.StartStep}/{s.TotalSteps}";
                    break;
                case StepMetrics m:
                    row.Step = m.Step;
                    row.Loss = m.Loss;
                    row.TokensPerSecond = m.TokensPerSecond;
                    line = $"[{e.TrialId}] step {m.Step}/{row.Total} loss {m.Loss:F4} acc {m.Accuracy:P1} lr {m.LearningRate:E2} " +
                           $"grad {m.GradNorm:F2} tok/s {m.TokensPerSecond:N0} eta {Eta(m.Step, row.StartStep, row.Total, DateTimeOffset.UtcNow - row.Started)}";
                    break;
                case EvalMetrics v:
                    row.EvalLoss = v.Loss;
                    row.EvalAccuracy = v.Accuracy;
                    line = $"[{e.TrialId}] eval at step {v.Step}: loss {v.Loss:F4} acc {v.Accuracy:P1}" +
                           (v.ExactMatch is { } exact ? $" exact match {exact:P1}" : "");
                    break;
                case CheckpointCommitted c:
                    line = $"[{e.TrialId}] checkpoint {c.CheckpointId} committed";
                    break;
                case TrialWarning w:
                    line = $"[{e.TrialId}] warning: {w.Message}";
                    break;
                case TrialFinished f:
                    row.State = f.Outcome.ToString().ToLowerInvariant();
                    line = $"[{e.TrialId}] {row.State} at step {f.Step}" + (f.Error is null ? "" : $": {f.Error}");
                    break;
            }
            if (!_interactive && line is not null) Console.WriteLine(line);
        }
    }

    /// <summary>Runs <paramref name="work"/> with a live table refreshed twice a second when interactive.</summary>
    public async Task<T> ShowWhileAsync<T>(Func<Task<T>> work)
    {
        if (!_interactive) return await work();
        T result = default!;
        await AnsiConsole.Live(BuildTable()).AutoClear(false).StartAsync(async context =>
        {
            var task = work();
            while (!task.IsCompleted)
            {
                await Task.WhenAny(task, Task.Delay(500));
                context.UpdateTarget(BuildTable());
            }
            result = await task;
            context.UpdateTarget(BuildTable());
        });
        return result;
    }

    private Table BuildTable()
    {
        lock (_gate)
        {
            var table = new Table().Border(TableBorder.Rounded)
                .AddColumns("trial", "state", "step", "loss", "eval loss", "tok/s", "eta");
            foreach (var (id, r) in _rows)
            {
                table.AddRow(id, r.State, $"{r.Step}/{r.Total}", F(r.Loss, "F4"), F(r.EvalLoss, "F4"), F(r.TokensPerSecond, "N0"),
                    r.State == "running" ? Eta(r.Step, r.StartStep, r.Total, DateTimeOffset.UtcNow - r.Started) : "-");
            }
            return table;
        }
    }

    /// <summary>A distillation trial's teacher (RUN/TRIAL once its stage has been resolved, a placeholder before); null
    /// for other trials.</summary>
    private static string? TeacherOf(TrialRecord trial)
    {
        try
        {
            var spec = trial.LoadSpec().Spec;
            return spec.Objective.Kind != Training.Shared.Objectives.ObjectiveKind.Distill ? null : spec.Distill.Teacher ?? "(its stage's pick)";
        }
        catch (Exception e) when (e is IOException or Training.Shared.Spec.SpecException)
        {
            return null;
        }
    }

    /// <summary>"arch / objective" from the trial's stored spec: stages of one pipeline differ in what they train.</summary>
    private static string ModelOf(TrialRecord trial)
    {
        try
        {
            var spec = trial.LoadSpec().Spec;
            return $"{Training.Shared.Spec.SpecWriter.NameOf(spec.Model.Architecture)} / {Training.Shared.Spec.SpecWriter.NameOf(spec.Objective.Kind)}";
        }
        catch (Exception e) when (e is IOException or Training.Shared.Spec.SpecException)
        {
            return "-";
        }
    }

    /// <summary>The side-by-side comparison of a run's trials.</summary>
    public static Table Summary(RunRecord run)
    {
        var trials = run.Trials.Select(t => t.ReadStatus()).ToList();
        var sweepKeys = trials.SelectMany(t => t.Overrides.Keys).Distinct().ToList();
        var table = new Table().Border(TableBorder.Rounded).Title($"run {run.Id}");
        table.AddColumn("trial");
        // A pipeline's summary names each trial's stage and where its weights came from.
        var stages = run.Manifest.Trials.ToDictionary(t => t.Id, t => t.Stage);
        var staged = run.Manifest.Stages is not null;
        if (staged) table.AddColumns("stage", "model", "weights from");
        // Distillation trials name their teacher; task trials report held-out exact match.
        var teachers = run.Trials.ToDictionary(t => t.Id, TeacherOf);
        var distills = teachers.Values.Any(t => t is not null);
        var exact = trials.Any(t => t.EvalExactMatch is not null);
        if (distills) table.AddColumn("teacher");
        foreach (var key in sweepKeys) table.AddColumn(key);
        table.AddColumns("state", "step", "params", "train loss", "eval loss", "eval acc");
        if (exact) table.AddColumn("exact match");
        table.AddColumn("tok/s");
        foreach (var t in trials)
        {
            var cells = new List<string> { t.TrialId };
            if (staged) cells.AddRange([stages.GetValueOrDefault(t.TrialId) ?? "-", ModelOf(run.Trial(t.TrialId)),
                // A trial of this run is named without the run id the title already shows.
                t.InitializedFrom?.Replace(run.Id + "/", "") ?? "-"]);
            if (distills) cells.Add(teachers.GetValueOrDefault(t.TrialId)?.Replace(run.Id + "/", "") ?? "-");
            cells.AddRange(sweepKeys.Select(k => t.Overrides.TryGetValue(k, out var v) ? v : "-"));
            cells.AddRange([
                t.State.ToString().ToLowerInvariant() + (t.Error is null ? "" : $" ({t.Error})"),
                $"{t.Step}/{t.TotalSteps}", t.Parameters.ToString("N0", CultureInfo.InvariantCulture),
                F(t.Loss, "F4"), F(t.EvalLoss, "F4"), F(t.EvalAccuracy, "P1"),
            ]);
            if (exact) cells.Add(F(t.EvalExactMatch, "P1"));
            cells.Add(F(t.TokensPerSecond, "N0"));
            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        return table;
    }

    /// <summary>
    /// Weights scored under several objectives: every trial of the run that eval-only trials (<c>train.steps: 0</c>)
    /// scored, with its own final eval loss and theirs, one column per model / objective (Ettin's cross-objective
    /// comparison reads off this table). Null when no eval-only trial scored a trial of this run.
    /// </summary>
    public static Table? Scores(RunRecord run)
    {
        var statuses = run.Trials.Select(t => t.ReadStatus()).ToList();
        var ids = statuses.Select(s => s.TrialId).ToHashSet();
        var prefix = run.Id + "/";
        var scores = statuses
            .Where(s => s.TotalSteps == 0 && s.InitializedFrom?.StartsWith(prefix, StringComparison.Ordinal) == true)
            .Select(s => (Source: s.InitializedFrom![prefix.Length..].Split('@')[0], Score: s))
            .Where(x => ids.Contains(x.Source)).ToList();
        if (scores.Count == 0) return null;
        var models = new Dictionary<string, string>();
        string Model(string trialId) => models.TryGetValue(trialId, out var m) ? m : models[trialId] = ModelOf(run.Trial(trialId));
        var rows = new List<(string Trial, Dictionary<string, double?> Losses)>();
        var columns = new List<string>();
        foreach (var source in statuses.Where(s => scores.Any(x => x.Source == s.TrialId)))
        {
            var losses = new Dictionary<string, double?>();
            // The trial's own evaluation first: an eval-only trial under the same model and objective repeats it.
            foreach (var (model, loss) in scores.Where(x => x.Source == source.TrialId).Select(x => (Model(x.Score.TrialId), x.Score.EvalLoss))
                         .Prepend((Model(source.TrialId), source.EvalLoss)))
            {
                losses.TryAdd(model, loss);
                if (!columns.Contains(model)) columns.Add(model);
            }
            rows.Add((source.TrialId, losses));
        }
        var table = new Table().Border(TableBorder.Rounded).Title("final eval loss of each trial's weights under each model / objective")
            .AddColumn("weights of").AddColumn("trained as");
        foreach (var column in columns) table.AddColumn(column);
        foreach (var (trial, losses) in rows)
            table.AddRow(new[] { trial, Model(trial) }.Concat(columns.Select(c => F(losses.GetValueOrDefault(c), "F4"))).Select(Markup.Escape).ToArray());
        return table;
    }

    /// <summary>Every attempt of every trial: where it ran, which checkpoint it started from, how and why it ended.
    /// Null when no trial was ever placed.</summary>
    public static Table? Attempts(IEnumerable<(string Trial, AttemptRecord Attempt)> attempts)
    {
        var rows = attempts.ToList();
        if (rows.Count == 0) return null;
        var table = new Table().Border(TableBorder.Rounded).Title("attempts")
            .AddColumns("trial", "#", "generation", "workers", "started", "from", "ended", "outcome", "why");
        foreach (var (trial, a) in rows)
            table.AddRow(new[]
            {
                trial, a.Number.ToString(CultureInfo.InvariantCulture), a.Generation.ToString(CultureInfo.InvariantCulture), string.Join(", ", a.Workers),
                a.StartedAt.ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                a.StartStep is null ? "-" : (a.ResumedFrom ?? (a.StartStep == 0 ? "scratch" : $"step {a.StartStep}"))
                    + (a.Skipped is { } skipped ? $" (skipped {skipped.Replace("\n", "; ")})" : ""),
                a.EndedAt?.ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture) ?? "-",
                a.Outcome ?? "running", a.Reason ?? "",
            }.Select(Markup.Escape).ToArray());
        return table;
    }

    /// <summary>The attempts of a run's trials, in trial order.</summary>
    public static IEnumerable<(string Trial, AttemptRecord Attempt)> AttemptsOf(RunRecord run) =>
        run.Trials.SelectMany(t => t.Attempts().Select(a => (t.Id, a)));
}
