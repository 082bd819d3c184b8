using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;

namespace Training.Shared.Training;

/// <summary>
/// What one trial costs, computed from its spec before anything runs (nothing is built): the model's parameters by
/// part and the training FLOPs per token it reads (<see cref="ParameterCount.TrainingFlopsPerExample"/> divided by the
/// encoder + decoder tokens of one example, which the objective fixes).
/// </summary>
public sealed record TrainingBudget(
    ModelArchitecture Arch,
    TransformerConfig Config,
    ParameterBreakdown Parameters,
    int EncoderTokens,
    int DecoderTokens,
    double FlopsPerToken,
    long Steps,
    int GlobalBatch)
{
    /// <summary>Tokens one example feeds the model (encoder + decoder).</summary>
    public int TokensPerExample => EncoderTokens + DecoderTokens;

    /// <summary>Training FLOPs of the whole trial: per token x tokens per example x global batch x steps.</summary>
    public double TotalFlops => FlopsPerToken * TokensPerExample * GlobalBatch * Steps;

    /// <summary>The budget of <paramref name="spec"/>; its vocabulary comes from its tokenizer (char reads the shards once).</summary>
    public static TrainingBudget For(ExperimentSpec spec)
    {
        var tokenizer = TrialComponents.Tokenizer(spec);
        return For(spec, tokenizer.VocabSize, tokenizer.Special.Pad);
    }

    public static TrainingBudget For(ExperimentSpec spec, int vocabSize, int padId)
    {
        var config = spec.Model.WithVocabulary(vocabSize, padId);
        // Distillation on span-corrupted text feeds what span corruption feeds.
        var (encoder, decoder) = spec.SpanCorruptedText
            ? ObjectiveFactory.TokensPerExample(spec.Objective with { Kind = ObjectiveKind.SpanCorruption })
            : ObjectiveFactory.TokensPerExample(spec.Objective, spec.Model.Architecture);
        return new TrainingBudget(spec.Model.Architecture, config, ParameterCount.Breakdown(config), encoder, decoder,
            ParameterCount.TrainingFlopsPerToken(config, encoder, decoder), spec.Train.Steps, spec.Train.GlobalBatch);
    }
}
