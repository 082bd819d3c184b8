using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;

namespace Training.Shared.Spec;

/// <summary>
/// A validated experiment: what one `orchestrator submit x.yaml` runs. Every value is resolved
/// (defaults filled in, layer split computed, data patterns made absolute). Build it with
/// <see cref="ExperimentLoader"/>; docs/experiment-yaml.md describes each key.
/// </summary>
public sealed record ExperimentSpec(
    string Name,
    long Seed,
    DataSpec Data,
    TokenizerSpec Tokenizer,
    TransformerConfig Model,
    ObjectiveSpec Objective,
    OptimizerSpec Optimizer,
    ScheduleSpec Schedule,
    TrainSpec Train,
    ResourcesSpec Resources,
    SweepSpec? Sweep,
    string SourceFile)
{
    /// <summary>The file's <c>stages:</c>, in the order they run; null for a file without stages (one flat sweep).</summary>
    public StagesSpec? Stages { get; init; }

    /// <summary><c>model.init_from: {stage: ..., pick: ...}</c> in a stage: resolved to a trial when that stage has
    /// completed (the trial's Model.InitFrom is then RUN/TRIAL).</summary>
    public StageReference? InitFromStage { get; init; }

    /// <summary>The <c>distill:</c> section; its defaults unless objective.kind is distill.</summary>
    public DistillSpec Distill { get; init; } = DistillSpec.Default;

    /// <summary><c>distill.teacher: {stage: ..., pick: ...}</c> in a stage: resolved like <see cref="InitFromStage"/> (the
    /// trial's Distill.Teacher is then RUN/TRIAL or the picked trial's checkpoints).</summary>
    public StageReference? TeacherFromStage { get; init; }

    /// <summary>Whether the trial reads prompt/target task shards: seq2seq, and distillation unless it distils on
    /// span-corrupted text (distill.data).</summary>
    public bool ReadsTasks => Objective.ReadsTasks && !SpanCorruptedText;

    /// <summary>Distillation on text shards corrupted T5-style: the corrupted window is the prompt, its span targets the target.</summary>
    public bool SpanCorruptedText => Objective.Kind == ObjectiveKind.Distill && Distill.Data == DistillData.SpanCorruption;
}

/// <summary>Data patterns (files, directories of *.parquet, globs) as absolute paths, resolved against the YAML file's folder.</summary>
public sealed record DataSpec(IReadOnlyList<string> Train, IReadOnlyList<string> Eval);

/// <summary>AdamW, or StableAdamW (AdamW with AdaFactor-style update clipping per tensor, Wortsman et al. 2023).</summary>
public enum OptimizerKind { AdamW, StableAdamW }

/// <summary>AdamW or StableAdamW; WeightDecay is never applied to norms and biases; GradClip 0 turns clipping off.</summary>
public sealed record OptimizerSpec(
    OptimizerKind Kind,
    double Lr,
    double Beta1,
    double Beta2,
    double Eps,
    double WeightDecay,
    double GradClip);

public enum ScheduleKind { Cosine, Wsd, Constant }

/// <summary>DecayFraction is used by the wsd schedule only (fraction of steps in the final decay).</summary>
public sealed record ScheduleSpec(ScheduleKind Kind, int WarmupSteps, double MinLrRatio, double DecayFraction);

/// <summary>
/// GlobalBatch examples per optimizer step, MicroBatch per forward/backward on one rank:
/// each rank accumulates GlobalBatch / (MicroBatch * Workers) micro-batches per step.
/// EvalEvery 0 = never (eval still runs at the end when eval data is given); CheckpointEvery 0 = only at the end.
/// </summary>
public sealed record TrainSpec(
    int Steps,
    int GlobalBatch,
    int MicroBatch,
    int EvalEvery,
    int EvalBatches,
    int CheckpointEvery,
    int KeepCheckpoints,
    int LogEvery);

/// <summary>Device is "cpu", "cuda" or "cuda:N". Workers is the most ranks a trial uses; MinWorkers (null: the same)
/// the fewest it may start or restart with when fewer workers are free (elastic data parallelism). Teachers: how many
/// teacher workers (role teacher) serve a distillation trial's teacher; they share its load. MaxRestarts: how many times
/// a trial is restarted from its latest checkpoint after a failure (a lost worker, a failed collective, storage down).</summary>
public sealed record ResourcesSpec(int Workers, int Threads, string Device, int MaxConcurrentTrials, int? MinWorkers = null, int Teachers = 0,
    int MaxRestarts = ResourcesSpec.DefaultMaxRestarts)
{
    public const int DefaultMaxRestarts = 3;

    public int MinimumWorkers => MinWorkers ?? Workers;
}
