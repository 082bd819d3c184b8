using Training.Shared.Data;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;

namespace Training.Shared.Training;

/// <summary>
/// What a trial's spec builds, in one place: its training files, tokenizer, objective and model shape joined with the
/// tokenizer's vocabulary. The spec itself knows nothing of these (Spec sits below Data, Models and Objectives' builders).
/// </summary>
public static class TrialComponents
{
    /// <summary>The training shards: local files, or blobs when data.train names azure:// URIs (read with this
    /// process's credentials).</summary>
    public static IReadOnlyList<IShardSource> TrainShards(ExperimentSpec spec) => ShardSources.Default.Resolve(spec.Data.Train, BaseFolder(spec));

    public static IReadOnlyList<IShardSource> EvalShards(ExperimentSpec spec) => ShardSources.Default.Resolve(spec.Data.Eval, BaseFolder(spec));

    /// <summary>The tokenizer of <paramref name="spec"/>; a char vocabulary is built from its training shards.</summary>
    public static ITokenizer Tokenizer(ExperimentSpec spec) => TokenizerFactory.ForSpec(spec.Tokenizer, () => TrainShards(spec));

    /// <summary>The tokenizer of a trial: a char vocabulary saved with its checkpoints wins over the shards (see TokenizerFactory.ForTrial).</summary>
    /// <param name="trainShards">The trial's training shards when the caller has resolved them already (listing blob
    /// storage again would cost requests at every trial start); resolved here when null.</param>
    public static ITokenizer TokenizerForTrial(ExperimentSpec spec, IBlobStore blobs, string checkpointPrefix,
        IReadOnlyList<IShardSource>? trainShards = null) =>
        TokenizerFactory.ForTrial(spec.Tokenizer, () => trainShards ?? TrainShards(spec), blobs, checkpointPrefix);

    public static ITrainingObjective Objective(ExperimentSpec spec, ITokenizer tokenizer) =>
        ObjectiveFactory.Create(spec.Objective, tokenizer, spec.Seed);

    /// <summary>The model shape of <paramref name="spec"/> at <paramref name="tokenizer"/>'s vocabulary.</summary>
    public static TransformerConfig ModelConfig(ExperimentSpec spec, ITokenizer tokenizer) =>
        spec.Model.WithVocabulary(tokenizer.VocabSize, tokenizer.Special.Pad);

    /// <summary>The trials of <paramref name="spec"/>; an equal-FLOPs sweep is sized with <see cref="TrainingBudget"/>.</summary>
    public static IReadOnlyList<Trial> Expand(ExperimentSpec spec) =>
        SweepExpander.Expand(spec, trialSpec => TrainingBudget.For(trialSpec).FlopsPerToken);

    private static string BaseFolder(ExperimentSpec spec) => Path.GetDirectoryName(spec.SourceFile) ?? ".";
}
