using System.Text.Json;
using System.Text.Json.Serialization;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;

namespace Training.Orchestrator.State;

/// <summary>Skipped: not run because a stage it runs after did not complete (the status's error says which).</summary>
public enum TrialState { Pending, Running, Completed, Cancelled, Failed, Skipped }

/// <summary>A trial's latest known state, kept in its status.json.</summary>
public sealed record TrialStatus(
    string TrialId, int Index, TrialState State, long Step, long TotalSteps, long Parameters,
    double? Loss, double? EvalLoss, double? EvalAccuracy, double? TokensPerSecond,
    string? LastCheckpoint, string? Error, IReadOnlyDictionary<string, string> Overrides, DateTimeOffset UpdatedAt,
    string? InitializedFrom = null, double? EvalExactMatch = null);

/// <param name="Stage">The stage the trial belongs to (null without stages).</param>
/// <param name="InitFrom">The stage whose picked trial gives this trial its weights, once that stage has completed.</param>
/// <param name="TeacherFrom">The stage whose picked trial is this distillation trial's teacher.</param>
public sealed record TrialEntry(string Id, int Index, IReadOnlyDictionary<string, string> Overrides, string? Stage = null,
    StageSource? InitFrom = null, StageSource? TeacherFrom = null);

/// <summary>A stage reference as run.json keeps it: the stage and the pick (best-eval, last or a trial index).</summary>
public sealed record StageSource(string Stage, string Pick)
{
    public static StageSource? Of(StageReference? reference) => reference is null ? null : new(reference.Stage, reference.Pick.ToString());
}

/// <summary>One stage of a pipeline and the stages it runs after.</summary>
public sealed record StageEntry(string Name, IReadOnlyList<string> After);

/// <summary>run.json: what was submitted.</summary>
/// <param name="Storage">The storage URI of this run's checkpoints (its own folder or prefix there); null for the run folder.</param>
/// <param name="Stages">The experiment's stages in run order; null for a file without stages.</param>
public sealed record RunManifest(string Id, string Experiment, string Source, DateTimeOffset CreatedAt, IReadOnlyList<TrialEntry> Trials,
    string? Storage = null, IReadOnlyList<StageEntry>? Stages = null);

/// <summary>
/// The runs folder: one folder per submitted experiment, holding what was submitted, each trial's resolved spec,
/// status and metrics log, and (by default) its checkpoints.
/// </summary>
public sealed class RunStore
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>One JSON object per line, for metrics.jsonl.</summary>
    internal static readonly JsonSerializerOptions JsonLine = new(Json) { WriteIndented = false };

    public RunStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    /// <summary>Where new runs keep their checkpoints (<c>--storage</c>): each run gets its own folder or prefix below it.
    /// Null keeps them in the run folder.</summary>
    public BlobLocation? Storage { get; init; }

    /// <summary>The runs folder: <c>--runs</c>, else $ORCHESTRATOR_RUNS, else ./runs.</summary>
    /// <param name="storage">Where new runs keep their checkpoints (<see cref="Storage"/>).</param>
    public static RunStore FromOption(string? runs, BlobLocation? storage = null) =>
        new(runs ?? Environment.GetEnvironmentVariable("ORCHESTRATOR_RUNS") ?? "runs") { Storage = storage };

    /// <param name="trialSpecYaml">Each trial's spec as already serialized (the API's submitted text, validated by its
    /// parse): stored as it came, so a spec is written once on its way to the ranks. Without it each spec is written here.</param>
    public RunRecord Create(ExperimentSpec spec, IReadOnlyList<Trial> trials, string experimentYaml,
        IReadOnlyDictionary<string, string>? trialSpecYaml = null)
    {
        StoragePaths.RequireSafeName(spec.Name, "the experiment name");
        foreach (var trial in trials) StoragePaths.RequireSafeName(trial.Id, "a trial id");
        if (trials.Select(t => t.Id).Distinct(StringComparer.Ordinal).Count() != trials.Count)
            throw new ArgumentException("trial ids must be unique");
        Directory.CreateDirectory(Root);
        var stamp = DateTimeOffset.UtcNow;
        var id = $"{spec.Name}-{stamp:yyyyMMdd-HHmmss}";
        for (var n = 2; Directory.Exists(StoragePaths.Child(Root, id)); n++) id = $"{spec.Name}-{stamp:yyyyMMdd-HHmmss}-{n}";
        StoragePaths.RequireSafeName(id, "the run id");
        var dir = StoragePaths.Child(Root, id);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "experiment.yaml"), experimentYaml);
        var manifest = new RunManifest(id, spec.Name, spec.SourceFile, stamp,
            trials.Select(t => new TrialEntry(t.Id, t.Index, t.Overrides, t.Stage,
                StageSource.Of(t.InitFromStage), StageSource.Of(t.TeacherFromStage))).ToList(),
            Storage?.Child(id).ToString(),
            spec.Stages?.Stages.Select(s => new StageEntry(s.Name, s.After.ToList())).ToList());
        var run = new RunRecord(dir, manifest);
        foreach (var trial in trials)
        {
            var trialRecord = run.Trial(trial.Id);
            Directory.CreateDirectory(trialRecord.Dir);
            File.WriteAllText(trialRecord.SpecPath, trialSpecYaml?.GetValueOrDefault(trial.Id) ?? SpecWriter.ToYaml(trial.Spec));
            trialRecord.WriteStatus(new TrialStatus(trial.Id, trial.Index, TrialState.Pending, 0, trial.Spec.Train.Steps, 0,
                null, null, null, null, null, null, trial.Overrides, stamp));
        }
        // Written last: a run folder without run.json is an interrupted submit, not a run.
        File.WriteAllText(Path.Combine(dir, "run.json"), JsonSerializer.Serialize(manifest, Json));
        return run;
    }

    public IReadOnlyList<RunRecord> List()
    {
        if (!Directory.Exists(Root)) return [];
        return Directory.EnumerateDirectories(Root)
            .Where(d => StoragePaths.IsSafeName(Path.GetFileName(d)) && File.Exists(Path.Combine(d, "run.json")))
            .Select(d => RunRecord.Load(d))
            .OrderBy(r => r.Manifest.CreatedAt)
            .ToList();
    }

    /// <summary>
    /// A run by its exact id only (what the API uses for state changes): null when there is none. A name that is not
    /// a safe run id is refused with <see cref="ArgumentException"/>.
    /// </summary>
    public RunRecord? FindExact(string id)
    {
        StoragePaths.RequireSafeName(id, "a run id");
        var dir = StoragePaths.Child(Root, id);
        if (!File.Exists(Path.Combine(dir, "run.json"))) return null;
        var run = RunRecord.Load(dir);
        return run.Id == id ? run : null;
    }

    /// <summary>The runs whose id starts with <paramref name="prefix"/> (all runs for "latest" is the caller's business).</summary>
    public IReadOnlyList<RunRecord> FindByPrefix(string prefix)
    {
        StoragePaths.RequireSafeName(prefix, "a run id");
        return List().Where(r => r.Id.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    /// <summary>A run by id, or by a unique prefix of it, or "latest".</summary>
    public RunRecord Open(string id)
    {
        if (id != "latest") StoragePaths.RequireSafeName(id, "a run id");
        var runs = List();
        if (id == "latest")
            return runs.LastOrDefault() ?? throw new ArgumentException($"no runs under {Root}");
        var exact = runs.FirstOrDefault(r => r.Id == id);
        if (exact is not null) return exact;
        var matches = runs.Where(r => r.Id.StartsWith(id, StringComparison.Ordinal)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ArgumentException($"no run '{id}' under {Root}; runs: {(runs.Count == 0 ? "none" : string.Join(", ", runs.Select(r => r.Id)))}"),
            _ => throw new ArgumentException($"'{id}' matches several runs: {string.Join(", ", matches.Select(r => r.Id))}"),
        };
    }
}

public sealed class RunRecord
{
    internal RunRecord(string dir, RunManifest manifest)
    {
        Dir = dir;
        Manifest = manifest;
    }

    public static RunRecord Load(string dir)
    {
        var path = Path.Combine(dir, "run.json");
        var manifest = JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), RunStore.Json)
            ?? throw new InvalidDataException($"{path} is empty");
        return new RunRecord(dir, manifest);
    }

    public string Dir { get; }
    public RunManifest Manifest { get; }
    public string Id => Manifest.Id;

    private string CancelMarker => Path.Combine(Dir, "cancel");
    public bool CancelRequested => File.Exists(CancelMarker);
    public void RequestCancel() => File.WriteAllText(CancelMarker, DateTimeOffset.UtcNow.ToString("O"));
    public void ClearCancel() => File.Delete(CancelMarker);

    /// <summary>Checkpoints live in the run folder by default (a blob store rooted here), else where the run's storage
    /// URI points (credentials from this process's environment).</summary>
    public IBlobStore CheckpointBlobs() => Manifest.Storage is { } storage ? BlobStores.Open(BlobLocation.Parse(storage)) : new LocalFolderBlobStore(Dir);

    public TrialRecord Trial(string id) => new(StoragePaths.Child(Dir, "trials", StoragePaths.RequireSafeName(id, "a trial id")), id);

    public IReadOnlyList<TrialRecord> Trials => Manifest.Trials.Select(t => Trial(t.Id)).ToList();

    /// <summary>The trial entries of one stage, in index order.</summary>
    public IReadOnlyList<TrialEntry> StageTrials(string stage) => Manifest.Trials.Where(t => t.Stage == stage).OrderBy(t => t.Index).ToList();
}

public sealed class TrialRecord(string dir, string id)
{
    private readonly object _gate = new();

    public string Dir { get; } = dir;
    public string Id { get; } = id;
    public string SpecPath => Path.Combine(Dir, "spec.yaml");
    public string StatusPath => Path.Combine(Dir, "status.json");
    public string MetricsPath => Path.Combine(Dir, "metrics.jsonl");
    public string CheckpointPrefix => $"trials/{Id}/checkpoints";

    public TrialStatus ReadStatus() =>
        JsonSerializer.Deserialize<TrialStatus>(File.ReadAllText(StatusPath), RunStore.Json)
        ?? throw new InvalidDataException($"{StatusPath} is empty");

    public void WriteStatus(TrialStatus status)
    {
        lock (_gate)
        {
            var temporary = StatusPath + ".tmp";
            File.WriteAllText(temporary, JsonSerializer.Serialize(status, RunStore.Json));
            File.Move(temporary, StatusPath, overwrite: true);
        }
    }

    /// <summary>The trial's spec as stored (the text that travels to its ranks) and validated once here.</summary>
    public (ExperimentSpec Spec, string Yaml) LoadSpec()
    {
        var yaml = File.ReadAllText(SpecPath);
        return (ExperimentLoader.ParseStoredTrial(yaml, SpecPath), yaml);
    }

    /// <summary>Records that the trial does not run because a stage before it did not complete: a metrics line and the
    /// status (state skipped, the reason as its error), so status and the summary say why.</summary>
    public void RecordSkipped(string reason)
    {
        lock (_gate)
        {
            File.AppendAllText(MetricsPath, JsonSerializer.Serialize(new { type = "skipped", reason, time = DateTimeOffset.UtcNow }, RunStore.JsonLine) + "\n");
            WriteStatus(ReadStatus() with { State = TrialState.Skipped, Error = reason, UpdatedAt = DateTimeOffset.UtcNow });
        }
    }

    /// <summary>Puts a picked source into the trial's stored spec (model.init_from or distill.teacher: RUN/TRIAL), so
    /// every later generation and a resume use the same trial; returns the new spec and its text.</summary>
    public (ExperimentSpec Spec, string Yaml) ResolveStageSource(Func<ExperimentSpec, ExperimentSpec> resolve)
    {
        lock (_gate)
        {
            var (spec, _) = LoadSpec();
            var resolved = resolve(spec);
            var yaml = SpecWriter.ToYaml(resolved);
            var temporary = SpecPath + ".tmp";
            File.WriteAllText(temporary, yaml);
            File.Move(temporary, SpecPath, overwrite: true);
            return (resolved, yaml);
        }
    }

    /// <summary>Appends one event to metrics.jsonl and folds it into status.json.</summary>
    public void Record(TrainingEvent e)
    {
        lock (_gate)
        {
            var line = e switch
            {
                StepMetrics s => JsonSerializer.Serialize(new { type = "step", s.Step, s.Loss, s.Accuracy, lr = s.LearningRate, grad_norm = s.GradNorm, tokens_per_second = s.TokensPerSecond, step_seconds = s.StepSeconds, communication_seconds = s.CommunicationSeconds, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                EvalMetrics v => JsonSerializer.Serialize(new { type = "eval", v.Step, v.Loss, v.Accuracy, v.Tokens, exact_match = v.ExactMatch, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                CheckpointCommitted c => JsonSerializer.Serialize(new { type = "checkpoint", c.Step, id = c.CheckpointId, c.Location, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                TrialStarted t => JsonSerializer.Serialize(new { type = "start", step = t.StartStep, total_steps = t.TotalSteps, t.Parameters, resumed_from = t.ResumedFrom, init_from = t.InitializedFrom, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                TrialWarning w => JsonSerializer.Serialize(new { type = "warning", w.Step, w.Message, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                TrialFinished f => JsonSerializer.Serialize(new { type = "finish", outcome = f.Outcome.ToString().ToLowerInvariant(), f.Step, f.Error, time = DateTimeOffset.UtcNow }, RunStore.JsonLine),
                _ => null,
            };
            if (line is not null) File.AppendAllText(MetricsPath, line + "\n");
            var s0 = ReadStatus();
            var updated = e switch
            {
                TrialStarted t => s0 with { State = TrialState.Running, Step = t.StartStep, TotalSteps = t.TotalSteps, Parameters = t.Parameters, Error = null,
                    InitializedFrom = t.InitializedFrom ?? s0.InitializedFrom },
                StepMetrics s => s0 with { Step = s.Step, Loss = s.Loss, TokensPerSecond = s.TokensPerSecond },
                EvalMetrics v => s0 with { EvalLoss = v.Loss, EvalAccuracy = v.Accuracy, EvalExactMatch = v.ExactMatch },
                CheckpointCommitted c => s0 with { LastCheckpoint = c.CheckpointId },
                TrialFinished f => s0 with
                {
                    State = f.Outcome switch { TrialOutcome.Completed => TrialState.Completed, TrialOutcome.Cancelled => TrialState.Cancelled, _ => TrialState.Failed },
                    Step = f.Step,
                    Error = f.Error,
                },
                _ => s0,
            };
            WriteStatus(updated with { UpdatedAt = DateTimeOffset.UtcNow });
        }
    }
}
