namespace Training.Shared.Objectives;

/// <summary>Which divergence between the teacher's and the student's next-token distributions distillation minimises.</summary>
public enum DistillDivergenceKind { ForwardKl, ReverseKl, Jsd }

/// <summary>How teacher scores travel: every token's log-probability, or the top k with the mass of the rest.</summary>
public enum TeacherTransportKind { Full, TopK }

/// <summary>
/// What an encoder-decoder teacher passes on besides its logits (MiniEnD, SPEC.md section 4), or None for a
/// decoder-only teacher (SPEC.md section 1). Logits: an encoder-decoder teacher's logits only. MiniEndD: logits and the
/// last layer's decoder self-attention and cross-attention relations. MiniEndE: logits and the last layer's decoder
/// self-attention and encoder self-attention relations.
/// </summary>
public enum DistillRelations { None, Logits, MiniEndD, MiniEndE }

/// <summary>What a distillation trial reads: prompt/target task shards, or text shards corrupted T5-style (SPEC.md
/// section 1's span corruption), whose span targets are the targets: MiniEnD's task-agnostic setting.</summary>
public enum DistillData { Tasks, SpanCorruption }

public static class DistillRelationsNames
{
    /// <summary>The value as written in YAML (distill.relations).</summary>
    public static string YamlName(this DistillRelations relations) => relations switch
    {
        DistillRelations.Logits => "logits",
        DistillRelations.MiniEndD => "miniend-d",
        DistillRelations.MiniEndE => "miniend-e",
        _ => "none",
    };
}

/// <summary>
/// The <c>distill:</c> section: an encoder-decoder student learns from a frozen teacher on the task's prompts.
/// Loss = Alpha * divergence(teacher, student) at Temperature (times T^2) + (1 - Alpha) * cross-entropy on the gold target.
/// OnPolicy is the share of batches whose targets the current student samples (SampleTemperature, SampleTopK,
/// MaxNewTokens); the others are scored on the gold target (off-policy KD). MaxStaleness: how many optimizer steps the
/// weights that sampled a batch may lag the weights it trains (0: sample with the current weights). Relations: whether
/// the teacher is an encoder-decoder and which of its last-layer attention relations the student matches (in
/// RelationHeads relation heads, 0 = the student's heads), added to the loss with weight RelationWeight. Data: task
/// pairs, or span-corrupted text windows (objective.input_length, noise_density, mean_span_length).
/// </summary>
/// <param name="Teacher">RUN/TRIAL[@STEP], an absolute path to a trial's checkpoints folder, or
/// azure://.../checkpoints[@STEP]; null until a stage reference is resolved.</param>
public sealed record DistillSpec(
    string? Teacher,
    double Alpha,
    DistillDivergenceKind Divergence,
    double Beta,
    double Temperature,
    double OnPolicy,
    double SampleTemperature,
    int SampleTopK,
    int MaxNewTokens,
    int MaxStaleness,
    TeacherTransportKind Transport,
    int TopK,
    DistillRelations Relations = DistillRelations.None,
    int RelationHeads = 0,
    double RelationWeight = 1.0,
    DistillData Data = DistillData.Tasks)
{
    public static DistillSpec Default { get; } = new(null, 0.9, DistillDivergenceKind.ForwardKl, 0.5, 1.0, 1.0, 0.9, 128, 256, 0,
        TeacherTransportKind.Full, 64);

    /// <summary>Whether the teacher is an encoder-decoder that reads the student's own encoder and decoder inputs.</summary>
    public bool EncoderDecoderTeacher => Relations != DistillRelations.None;
}
