using System.Text.Json;
using System.Text.Json.Serialization;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;

namespace Training.Orchestrator.State;

/// <summary>Skipped: not run because a stage it runs after did not complete (the status's error says which).</summary>
public enum TrialState { Pending, Running, Completed, Cancelled, Failed, Skipped }

/// <summary>A trial's latest known state (its row in the run-state store).</summary>
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

/// <summary>A stage reference as the run keeps it: the stage and the pick (best-eval, last or a trial index).</summary>
public sealed record StageSource(string Stage, string Pick)
{
    public static StageSource? Of(StageReference? reference) => reference is null ? null : new(reference.Stage, reference.Pick.ToString());
}

/// <summary>One stage of a pipeline and the stages it runs after.</summary>
public sealed record StageEntry(string Name, IReadOnlyList<string> After);

/// <summary>What was submitted: the run and its trials.</summary>
/// <param name="Storage">The storage URI of this run's checkpoints (its own folder or prefix there); null for the run folder.</param>
/// <param name="Stages">The experiment's stages in run order; null for a file without stages.</param>
public sealed record RunManifest(string Id, string Experiment, string Source, DateTimeOffset CreatedAt, IReadOnlyList<TrialEntry> Trials,
    string? Storage = null, IReadOnlyList<StageEntry>? Stages = null);

/// <summary>
/// The runs: their state in the run-state store (<see cref="IRunStateStore"/>: SQLite in the runs folder by default,
/// or <c>--state</c>), and per run a folder holding what was submitted (experiment.yaml, each trial's spec.yaml),
/// worker logs and, by default, checkpoints. State changes are written through <see cref="Writer"/>, in batches.
/// </summary>
public sealed class RunStore : IDisposable
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>One JSON object per line: the metrics log's events.</summary>
    public static readonly JsonSerializerOptions JsonLine = new(Json) { WriteIndented = false };

    private readonly Lazy<IRunStateStore> _db;
    private readonly Lazy<StateWriter> _writer;

    public RunStore(string root, StateLocation? state = null)
    {
        Root = Path.GetFullPath(root);
        State = state ?? StateLocation.Default(Root);
        _db = new Lazy<IRunStateStore>(State.Open, LazyThreadSafetyMode.ExecutionAndPublication);
        _writer = new Lazy<StateWriter>(() => new StateWriter(Db), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Root { get; }

    /// <summary>Where run state lives (<c>--state</c>).</summary>
    public StateLocation State { get; }

    /// <summary>The run-state store, opened (and its schema migrated) on first use.</summary>
    public IRunStateStore Db => _db.Value;

    /// <summary>Batches this process's state changes off the caller's thread.</summary>
    public StateWriter Writer => _writer.Value;

    /// <summary>Held while a trial's status is read, changed and written back.</summary>
    internal object StatusGate { get; } = new();

    /// <summary>Where new runs keep their checkpoints (<c>--storage</c>): each run gets its own folder or prefix below it.
    /// Null keeps them in the run folder.</summary>
    public BlobLocation? Storage { get; init; }

    /// <summary>The runs folder: <c>--runs</c>, else $ORCHESTRATOR_RUNS, else ./runs; the state store: <c>--state</c>, else
    /// $ORCHESTRATOR_STATE, else sqlite:RUNS/state.db.</summary>
    /// <param name="storage">Where new runs keep their checkpoints (<see cref="Storage"/>).</param>
    public static RunStore FromOption(string? runs, BlobLocation? storage = null, string? state = null)
    {
        var root = runs ?? Environment.GetEnvironmentVariable("ORCHESTRATOR_RUNS") ?? "runs";
        var stateText = state ?? Environment.GetEnvironmentVariable("ORCHESTRATOR_STATE");
        return new(root, string.IsNullOrEmpty(stateText) ? null : StateLocation.Parse(stateText)) { Storage = storage };
    }

    /// <summary>False for an SQLite store whose file was never created (no run was ever submitted here): reads then
    /// find nothing without creating it.</summary>
    private bool StateExists => _db.IsValueCreated || State.Backend != StateBackend.Sqlite || File.Exists(State.Target);

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
        for (var n = 2; Directory.Exists(StoragePaths.Child(Root, id)) || Db.RunExists(id); n++) id = $"{spec.Name}-{stamp:yyyyMMdd-HHmmss}-{n}";
        StoragePaths.RequireSafeName(id, "the run id");
        var dir = StoragePaths.Child(Root, id);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "experiment.yaml"), experimentYaml);
        var manifest = new RunManifest(id, spec.Name, spec.SourceFile, stamp,
            trials.Select(t => new TrialEntry(t.Id, t.Index, t.Overrides, t.Stage,
                StageSource.Of(t.InitFromStage), StageSource.Of(t.TeacherFromStage))).ToList(),
            Storage?.Child(id).ToString(),
            spec.Stages?.Stages.Select(s => new StageEntry(s.Name, s.After.ToList())).ToList());
        var run = new RunRecord(this, manifest);
        foreach (var trial in trials)
        {
            var trialRecord = run.Trial(trial.Id);
            Directory.CreateDirectory(trialRecord.Dir);
            var text = trialSpecYaml?.GetValueOrDefault(trial.Id) ?? SpecWriter.ToYaml(trial.Spec);
            File.WriteAllText(trialRecord.SpecPath, text);
            FreshSpecs[trialRecord.SpecPath] = (text, trial.Spec);
        }
        // Recorded last, in one transaction: a run folder the store does not know is an interrupted submit, not a run.
        Db.CreateRun(manifest, trials.Select(t => new TrialStatus(t.Id, t.Index, TrialState.Pending, 0, t.Spec.Train.Steps, 0,
            null, null, null, null, null, null, t.Overrides, stamp)).ToList());
        return run;
    }

    /// <summary>
    /// Specs this process has just written with <see cref="Create"/>, already parsed: the coordinator in the same
    /// process (serve, the embedded cluster) takes each once instead of parsing its file again (milliseconds a trial,
    /// which adds up over a sweep of thousands). Keyed by file; used only while the file still holds that text.
    /// </summary>
    internal System.Collections.Concurrent.ConcurrentDictionary<string, (string Yaml, ExperimentSpec Spec)> FreshSpecs { get; } = new(StringComparer.Ordinal);

    public IReadOnlyList<RunRecord> List() => StateExists ? Db.ListRuns().Select(m => new RunRecord(this, m)).ToList() : [];

    /// <summary>
    /// A run by its exact id only (what the API uses for state changes): null when there is none. A name that is not
    /// a safe run id is refused with <see cref="ArgumentException"/>.
    /// </summary>
    public RunRecord? FindExact(string id)
    {
        StoragePaths.RequireSafeName(id, "a run id");
        return StateExists && Db.FindRun(id) is { } manifest ? new RunRecord(this, manifest) : null;
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
            return runs.LastOrDefault() ?? throw new ArgumentException($"no runs under {Root} (state in {State})");
        var exact = runs.FirstOrDefault(r => r.Id == id);
        if (exact is not null) return exact;
        var matches = runs.Where(r => r.Id.StartsWith(id, StringComparison.Ordinal)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ArgumentException($"no run '{id}' under {Root} (state in {State}); runs: {(runs.Count == 0 ? "none" : string.Join(", ", runs.Select(r => r.Id)))}"),
            _ => throw new ArgumentException($"'{id}' matches several runs: {string.Join(", ", matches.Select(r => r.Id))}"),
        };
    }

    /// <summary>Commits what this process queued, then closes the store.</summary>
    public void Dispose()
    {
        if (_writer.IsValueCreated) _writer.Value.Dispose();
        if (_db.IsValueCreated) _db.Value.Dispose();
    }
}

public sealed class RunRecord
{
    internal RunRecord(RunStore store, RunManifest manifest)
    {
        Store = store;
        Dir = StoragePaths.Child(store.Root, manifest.Id);
        Manifest = manifest;
    }

    public RunStore Store { get; }

    /// <summary>The run's folder: experiment.yaml, trial specs, worker logs, checkpoints by default.</summary>
    public string Dir { get; }
    public RunManifest Manifest { get; }
    public string Id => Manifest.Id;

    public bool CancelRequested => Store.Db.CancelRequested(Id) is not null;
    public void RequestCancel() => Store.Db.SetCancelRequested(Id, true);
    public void ClearCancel() => Store.Db.SetCancelRequested(Id, false);

    /// <summary>Checkpoints live in the run folder by default (a blob store rooted here), else where the run's storage
    /// URI points (credentials from this process's environment).</summary>
    public IBlobStore CheckpointBlobs() => Manifest.Storage is { } storage ? BlobStores.Open(BlobLocation.Parse(storage)) : new LocalFolderBlobStore(Dir);

    public TrialRecord Trial(string id) => new(this, StoragePaths.RequireSafeName(id, "a trial id"));

    private Dictionary<string, TrialEntry>? _entries;

    /// <summary>The manifest's entry of a trial, by id (an index: the coordinator looks one up per placement).</summary>
    public TrialEntry Entry(string trialId) =>
        (_entries ??= Manifest.Trials.ToDictionary(t => t.Id, StringComparer.Ordinal)).TryGetValue(trialId, out var entry)
            ? entry : throw new ArgumentException($"run {Id} has no trial {trialId}");

    public IReadOnlyList<TrialRecord> Trials => Manifest.Trials.Select(t => Trial(t.Id)).ToList();

    /// <summary>Every trial's status, in trial order, in one read (this process's uncommitted writes included).</summary>
    public IReadOnlyList<TrialStatus> Statuses()
    {
        var stored = Store.Db.ReadStatuses(Id);
        return Manifest.Trials.Select(t => Store.Writer.PendingStatus(Id, t.Id) ?? stored.GetValueOrDefault(t.Id)
            ?? throw new InvalidDataException($"run {Id}: trial {t.Id} has no status in {Store.State}")).ToList();
    }

    /// <summary>
    /// Prepares a resume: the trials it continues (every one not completed, or only <paramref name="trialId"/>: its id or
    /// the end of it), with <c>KEY=VALUE</c> changes (<paramref name="settings"/>) written into their specs once every
    /// one of them validates, so a bad value changes nothing.
    /// </summary>
    /// <exception cref="ArgumentException">No such trial, nothing to resume, or a setting without '='.</exception>
    /// <exception cref="SpecException">A setting names an unknown or fixed key, or gives a bad value.</exception>
    public IReadOnlyList<TrialRecord> PrepareResume(string? trialId, IReadOnlyList<string> settings)
    {
        var overrides = settings.Select(text => text.IndexOf('=') is var eq and > 0
            ? (text[..eq].Trim(), text[(eq + 1)..].Trim())
            : throw new ArgumentException($"--set '{text}': expected KEY=VALUE, for example train.steps=2000")).ToList();
        var trials = Trials.Zip(Statuses()).ToList();
        List<TrialRecord> targets;
        if (trialId is null)
        {
            targets = trials.Where(t => t.Second.State != TrialState.Completed).Select(t => t.First).ToList();
            if (targets.Count == 0) throw new ArgumentException($"run {Id} has no unfinished trial to resume");
        }
        else
        {
            var matches = trials.Where(t => t.First.Id == trialId || t.First.Id.EndsWith(trialId, StringComparison.Ordinal)).ToList();
            if (matches.Count != 1)
                throw new ArgumentException($"run {Id} has {(matches.Count == 0 ? "no" : "several")} trial(s) '{trialId}'; trials: {string.Join(", ", trials.Select(t => t.First.Id))}");
            if (matches[0].Second.State == TrialState.Completed) throw new ArgumentException($"trial {matches[0].First.Id} has completed; there is nothing to resume");
            targets = [matches[0].First];
        }
        if (overrides.Count == 0) return targets;
        // Every trial's change is checked before any is written.
        foreach (var trial in targets) ExperimentLoader.ParseStoredTrial(File.ReadAllText(trial.SpecPath), trial.SpecPath, overrides, "--set");
        foreach (var trial in targets) trial.ApplyOverrides(overrides, "--set");
        return targets;
    }

    /// <summary>The trial entries of one stage, in index order.</summary>
    public IReadOnlyList<TrialEntry> StageTrials(string stage) => Manifest.Trials.Where(t => t.Stage == stage).OrderBy(t => t.Index).ToList();
}

public sealed class TrialRecord(RunRecord run, string id)
{
    public RunRecord Run { get; } = run;
    public string Id { get; } = id;
    private RunStore Store => Run.Store;

    /// <summary>The trial's folder in the run folder (its spec; its checkpoints by default).</summary>
    public string Dir { get; } = StoragePaths.Child(run.Dir, "trials", id);
    public string SpecPath => Path.Combine(Dir, "spec.yaml");
    public string CheckpointPrefix => $"trials/{Id}/checkpoints";

    /// <exception cref="InvalidDataException">The store has no such trial.</exception>
    public TrialStatus ReadStatus() =>
        Store.Writer.KnownStatus(Run.Id, Id) ?? Store.Db.ReadStatus(Run.Id, Id)
        ?? throw new InvalidDataException($"run {Run.Id}: trial {Id} has no status in {Store.State}");

    public void WriteStatus(TrialStatus status) => Store.Writer.Write(new WriteStatus(Run.Id, status), urgent: true);

    /// <summary>The trial's events (its metrics log) after <paramref name="afterSequence"/>, as committed.</summary>
    public IReadOnlyList<StoredEvent> Events(long afterSequence = 0, int limit = int.MaxValue) => Store.Db.ReadEvents(Run.Id, Id, afterSequence, limit);

    public IReadOnlyList<AttemptRecord> Attempts() => Store.Db.Attempts(Run.Id, Id);

    public IReadOnlyList<CheckpointRecord> Checkpoints() => Store.Db.Checkpoints(Run.Id, Id);

    /// <summary>The coordinator placed the trial: a new attempt begins.</summary>
    public void BeginAttempt(int generation, IReadOnlyList<string> workers) =>
        Store.Writer.Write(new BeginAttempt(Run.Id, Id, generation, workers, DateTimeOffset.UtcNow), urgent: true);

    /// <summary>The current attempt ended without finishing the trial (it restarts, or moves off a draining worker).</summary>
    public void EndAttempt(string outcome, long step, string? reason) =>
        Store.Writer.Write(new EndAttempt(Run.Id, Id, outcome, step, reason, DateTimeOffset.UtcNow), urgent: true);

    /// <summary>The trial's spec as stored (the text that travels to its ranks) and validated once here.</summary>
    /// <param name="takeFresh">Take the spec parsed when this process created the run, if the file still holds its text
    /// (the coordinator, once per trial it queues).</param>
    public (ExperimentSpec Spec, string Yaml) LoadSpec(bool takeFresh = false)
    {
        var yaml = File.ReadAllText(SpecPath);
        if (takeFresh && Store.FreshSpecs.TryRemove(SpecPath, out var fresh) && fresh.Yaml == yaml) return (fresh.Spec, yaml);
        return (ExperimentLoader.ParseStoredTrial(yaml, SpecPath), yaml);
    }

    /// <summary>Changes the trial's stored spec with <c>KEY=VALUE</c> overrides (resume), validated like the file; the
    /// status takes the new step count. Returns the new spec.</summary>
    /// <exception cref="SpecException">An override names an unknown or fixed key, or gives a bad value.</exception>
    public ExperimentSpec ApplyOverrides(IReadOnlyList<(string Key, string Value)> overrides, string origin)
    {
        lock (Store.StatusGate)
        {
            var (_, yaml) = LoadSpec();
            var changed = ExperimentLoader.ParseStoredTrial(yaml, SpecPath, overrides, origin);
            var temporary = SpecPath + ".tmp";
            File.WriteAllText(temporary, SpecWriter.ToYaml(changed));
            File.Move(temporary, SpecPath, overwrite: true);
            WriteStatus(ReadStatus() with { TotalSteps = changed.Train.Steps, UpdatedAt = DateTimeOffset.UtcNow });
            return changed;
        }
    }

    /// <summary>Records that the trial does not run because a stage before it did not complete: an event and the
    /// status (state skipped, the reason as its error), so status and the summary say why.</summary>
    public void RecordSkipped(string reason)
    {
        var now = DateTimeOffset.UtcNow;
        lock (Store.StatusGate)
        {
            Store.Writer.Write(new AppendEvent(Run.Id, Id, "skipped", 0, now, JsonSerializer.Serialize(new { type = "skipped", reason, time = now }, RunStore.JsonLine)));
            WriteStatus(ReadStatus() with { State = TrialState.Skipped, Error = reason, UpdatedAt = now });
        }
    }

    /// <summary>Puts a picked source into the trial's stored spec (model.init_from or distill.teacher: RUN/TRIAL), so
    /// every later generation and a resume use the same trial; returns the new spec and its text.</summary>
    public (ExperimentSpec Spec, string Yaml) ResolveStageSource(Func<ExperimentSpec, ExperimentSpec> resolve)
    {
        lock (Store.StatusGate)
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

    /// <summary>Appends one event to the trial's log and folds it into its status, attempts and checkpoints.</summary>
    public void Record(TrainingEvent e)
    {
        var now = DateTimeOffset.UtcNow;
        var (type, step, body) = e switch
        {
            StepMetrics s => ("step", s.Step, (object)new { type = "step", s.Step, s.Loss, s.Accuracy, lr = s.LearningRate, grad_norm = s.GradNorm, tokens_per_second = s.TokensPerSecond, step_seconds = s.StepSeconds, communication_seconds = s.CommunicationSeconds, time = now }),
            EvalMetrics v => ("eval", v.Step, new { type = "eval", v.Step, v.Loss, v.Accuracy, v.Tokens, exact_match = v.ExactMatch, time = now }),
            CheckpointCommitted c => ("checkpoint", c.Step, new { type = "checkpoint", c.Step, id = c.CheckpointId, c.Location, time = now }),
            TrialStarted t => ("start", t.StartStep, new { type = "start", step = t.StartStep, total_steps = t.TotalSteps, t.Parameters, resumed_from = t.ResumedFrom, init_from = t.InitializedFrom, skipped = t.SkippedCheckpoints, time = now }),
            TrialWarning w => ("warning", w.Step, new { type = "warning", w.Step, w.Message, time = now }),
            TrialFinished f => ("finish", f.Step, new { type = "finish", outcome = f.Outcome.ToString().ToLowerInvariant(), f.Step, f.Error, time = now }),
            _ => (null, 0L, null),
        };
        // Starts, finishes and commits are written at once; metrics ride the next batch.
        var urgent = e is TrialStarted or TrialFinished or CheckpointCommitted;
        lock (Store.StatusGate)
        {
            if (type is not null) Store.Writer.Write(new AppendEvent(Run.Id, Id, type, step, now, JsonSerializer.Serialize(body, RunStore.JsonLine)), urgent);
            switch (e)
            {
                case TrialStarted t:
                    Store.Writer.Write(new AttemptStarted(Run.Id, Id, t.StartStep, t.ResumedFrom,
                        t.SkippedCheckpoints is { Count: > 0 } skipped ? string.Join("\n", skipped) : null), urgent);
                    break;
                case CheckpointCommitted c:
                    Store.Writer.Write(new RecordCheckpoint(Run.Id, Id, c.Step, c.CheckpointId, c.Location, now), urgent);
                    break;
                case TrialFinished f:
                    Store.Writer.Write(new EndAttempt(Run.Id, Id, f.Outcome.ToString().ToLowerInvariant(), f.Step, f.Error, now), urgent);
                    break;
            }
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
            Store.Writer.Write(new WriteStatus(Run.Id, updated with { UpdatedAt = now }), urgent);
        }
    }
}
