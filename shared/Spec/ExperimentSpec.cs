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
    ModelSpec Model,
    ObjectiveSpec Objective,
    OptimizerSpec Optimizer,
    ScheduleSpec Schedule,
    TrainSpec Train,
    ResourcesSpec Resources,
    SweepSpec? Sweep,
    string SourceFile);

/// <summary>Data patterns (files, directories of *.parquet, globs) as absolute paths, resolved against the YAML file's folder.</summary>
public sealed record DataSpec(IReadOnlyList<string> Train, IReadOnlyList<string> Eval);

public enum TokenizerKind { Byte, Cl100k, Char }

public sealed record TokenizerSpec(TokenizerKind Kind, int Sentinels);

/// <summary>The model families of the seed papers (docs/architecture.md, "Models").</summary>
public enum ModelArch
{
    EncoderDecoder,
    DecoderOnly,
    Gpt,
    ParallelGpt,
    LinearlyCompressedGpt,
    ConvCompressedGpt,
    EncoderOnly,
    EttinDecoder,
}

public enum MlpChoice { Gelu, SwiGlu, GeGlu }

/// <summary>GPT family: LayerNorm before each sub-layer (pre) or after each residual sum (post).</summary>
public enum NormPosition { Pre, Post }

/// <summary>parallel-gpt at inference (eval): both branches, or only the one with the larger learned weight.</summary>
public enum BranchesAtInference { Both, Stronger }

/// <summary>
/// Model shape. Layers is the total; EncoderLayers/DecoderLayers are the resolved split
/// (causal single-stack models: 0 and Layers; encoder-only: Layers and 0). EncoderFraction is kept only when the
/// file gave it. Attention width is Heads * HeadDim and may differ from DModel. The fields after NormEps shape one
/// family each and hold their defaults for the others: NormPosition, MaxPositions (0 unless GPT),
/// CompressionStages, Branches (GPT family); GlobalEvery, LocalWindow, GlobalRopeTheta (Ettin); Preset names the
/// Ettin size the shape came from, when the file gave one.
/// </summary>
public sealed record ModelSpec(
    ModelArch Arch,
    int DModel,
    int Layers,
    int EncoderLayers,
    int DecoderLayers,
    double? EncoderFraction,
    int Heads,
    int KvHeads,
    int HeadDim,
    int FfnDim,
    MlpChoice Mlp,
    double Dropout,
    double RopeTheta,
    double NormEps,
    string? Preset = null,
    NormPosition NormPosition = NormPosition.Pre,
    int MaxPositions = 0,
    int CompressionStages = 2,
    BranchesAtInference Branches = BranchesAtInference.Both,
    int GlobalEvery = 3,
    int LocalWindow = 128,
    double GlobalRopeTheta = 160_000)
{
    public bool IsGptFamily => Arch is ModelArch.Gpt or ModelArch.ParallelGpt or ModelArch.LinearlyCompressedGpt or ModelArch.ConvCompressedGpt;

    public bool IsEttin => Arch is ModelArch.EncoderOnly or ModelArch.EttinDecoder;

    /// <summary>Every architecture except the encoder-decoder and the encoder-only model predicts the next token.</summary>
    public bool IsCausal => Arch is not (ModelArch.EncoderDecoder or ModelArch.EncoderOnly);
}

public enum ObjectiveKind { SpanCorruption, Clm, Mlm }

/// <summary>
/// InputLength is the encoder input length (span corruption) or the sequence length (CLM, MLM).
/// MaskRate / EvalMaskRate: the share of tokens MLM masks in training / evaluation (80% mask id, 10% random, 10% kept).
/// </summary>
public sealed record ObjectiveSpec(
    ObjectiveKind Kind,
    int InputLength,
    double NoiseDensity,
    double MeanSpanLength,
    double MaskRate = 0.3,
    double EvalMaskRate = 0.15);

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
/// the fewest it may start or restart with when fewer workers are free (elastic data parallelism).</summary>
public sealed record ResourcesSpec(int Workers, int Threads, string Device, int MaxConcurrentTrials, int? MinWorkers = null)
{
    public int MinimumWorkers => MinWorkers ?? Workers;
}
