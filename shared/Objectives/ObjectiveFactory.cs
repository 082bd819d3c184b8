using Training.Shared.Data;

namespace Training.Shared.Objectives;

/// <summary>The objective an experiment's <c>objective:</c> section describes, and the tokens it feeds the model.</summary>
public static class ObjectiveFactory
{
    /// <summary>The objective <paramref name="o"/> describes; its random choices are seeded by <paramref name="seed"/>.</summary>
    public static ITrainingObjective Create(ObjectiveSpec o, ITokenizer tokenizer, long seed) => o.Kind switch
    {
        ObjectiveKind.SpanCorruption => new SpanCorruptionObjective(
            new SpanCorruption(o.NoiseDensity, o.MeanSpanLength, o.InputLength, tokenizer.Special), tokenizer.Special, seed),
        ObjectiveKind.Clm => new CausalLmObjective(o.InputLength),
        ObjectiveKind.Mlm => new MaskedLmObjective(o.InputLength, o.MaskRate, o.EvalMaskRate, tokenizer.Special, seed),
        ObjectiveKind.Seq2Seq or ObjectiveKind.Distill =>
            throw new ArgumentException($"objective.kind {o.Kind} reads task examples, not packed text: build it with {nameof(CreateTask)}"),
        _ => throw new ArgumentOutOfRangeException(nameof(o), o.Kind, "unknown objective.kind"),
    };

    /// <summary>The seq2seq objective (distillation needs its teachers too: see DistillationObjective).</summary>
    public static ITaskObjective CreateTask(ObjectiveSpec o, ITokenizer tokenizer) => o.Kind switch
    {
        ObjectiveKind.Seq2Seq => new Seq2SeqObjective(tokenizer.Special),
        _ => throw new ArgumentOutOfRangeException(nameof(o), o.Kind, "not a task objective without teachers"),
    };

    /// <summary>Tokens one example feeds <paramref name="architecture"/>: as <see cref="TokensPerExample(ObjectiveSpec)"/>, and for
    /// task objectives at most (input_length, target_length) for an encoder-decoder, prompt plus target for a causal model.</summary>
    public static (int Encoder, int Decoder) TokensPerExample(ObjectiveSpec objective, Models.ModelArchitecture architecture) =>
        objective.ReadsTasks
            ? architecture == Models.ModelArchitecture.EncoderDecoder ? (objective.InputLength, objective.TargetLength) : (0, objective.InputLength + objective.TargetLength)
            : TokensPerExample(objective);

    /// <summary>
    /// Tokens one example feeds the model: (encoder, decoder). Span corruption: its corrupted input and target
    /// lengths (512 -> 512 and 114); clm: (0, input_length); mlm: (input_length, 0).
    /// </summary>
    public static (int Encoder, int Decoder) TokensPerExample(ObjectiveSpec objective) => objective.Kind switch
    {
        ObjectiveKind.SpanCorruption => SpanCorruption.ComputeLengths(objective.InputLength, objective.NoiseDensity, objective.MeanSpanLength) is var l
            ? (l.InputLength, l.TargetLength)
            : default,
        ObjectiveKind.Clm => (0, objective.InputLength),
        ObjectiveKind.Mlm => (objective.InputLength, 0),
        ObjectiveKind.Seq2Seq or ObjectiveKind.Distill => (objective.InputLength, objective.TargetLength),
        _ => throw new ArgumentOutOfRangeException(nameof(objective), objective.Kind, "unknown objective.kind"),
    };
}
