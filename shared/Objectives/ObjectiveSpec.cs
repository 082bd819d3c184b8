namespace Training.Shared.Objectives;

public enum ObjectiveKind { SpanCorruption, Clm, Mlm }

/// <summary>
/// The <c>objective:</c> section of an experiment. InputLength is the encoder input length (span corruption) or the
/// sequence length (CLM, MLM). MaskRate / EvalMaskRate: the share of tokens MLM masks in training / evaluation
/// (80% mask id, 10% random, 10% kept).
/// </summary>
public sealed record ObjectiveSpec(
    ObjectiveKind Kind,
    int InputLength,
    double NoiseDensity,
    double MeanSpanLength,
    double MaskRate = 0.3,
    double EvalMaskRate = 0.15)
{
    /// <summary>span-corruption for the encoder-decoder, mlm for the encoder-only model, clm for every causal model.</summary>
    public static ObjectiveKind NativeFor(Models.ModelArchitecture architecture) => architecture switch
    {
        Models.ModelArchitecture.EncoderDecoder => ObjectiveKind.SpanCorruption,
        Models.ModelArchitecture.EncoderOnly => ObjectiveKind.Mlm,
        _ => ObjectiveKind.Clm,
    };
}
