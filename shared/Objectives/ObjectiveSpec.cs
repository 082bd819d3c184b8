namespace Training.Shared.Objectives;

/// <summary>Seq2Seq and Distill train on task data (prompt/target pairs), the others on packed text.</summary>
public enum ObjectiveKind { SpanCorruption, Clm, Mlm, Seq2Seq, Distill }

/// <summary>
/// The <c>objective:</c> section of an experiment. InputLength is the encoder input length (span corruption) or the
/// sequence length (CLM, MLM). MaskRate / EvalMaskRate: the share of tokens MLM masks in training / evaluation
/// (80% mask id, 10% random, 10% kept). For task objectives (seq2seq, distill) InputLength is the most prompt tokens
/// (longer prompts keep their end) and TargetLength the most target tokens, EOS included.
/// </summary>
public sealed record ObjectiveSpec(
    ObjectiveKind Kind,
    int InputLength,
    double NoiseDensity,
    double MeanSpanLength,
    double MaskRate = 0.3,
    double EvalMaskRate = 0.15,
    int TargetLength = 64)
{
    /// <summary>True for objectives that read prompt/target task shards instead of packed text.</summary>
    public bool ReadsTasks => Kind is ObjectiveKind.Seq2Seq or ObjectiveKind.Distill;

    /// <summary>Whether <paramref name="kind"/> can train <paramref name="architecture"/>: each architecture's native
    /// objective; seq2seq also fine-tunes an encoder-decoder or trains any causal model on prompt-then-target; distill
    /// trains an encoder-decoder student.</summary>
    public static bool Trains(ObjectiveKind kind, Models.ModelArchitecture architecture) => kind switch
    {
        ObjectiveKind.Seq2Seq => architecture != Models.ModelArchitecture.EncoderOnly,
        ObjectiveKind.Distill => architecture == Models.ModelArchitecture.EncoderDecoder,
        _ => kind == NativeFor(architecture),
    };

    /// <summary>span-corruption for the encoder-decoder, mlm for the encoder-only model, clm for every causal model.</summary>
    public static ObjectiveKind NativeFor(Models.ModelArchitecture architecture) => architecture switch
    {
        Models.ModelArchitecture.EncoderDecoder => ObjectiveKind.SpanCorruption,
        Models.ModelArchitecture.EncoderOnly => ObjectiveKind.Mlm,
        _ => ObjectiveKind.Clm,
    };
}
