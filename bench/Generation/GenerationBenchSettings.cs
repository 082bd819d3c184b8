using Training.Shared.Models;

namespace Training.Bench.Generation;

/// <summary>
/// What the generation benchmark measures: an encoder-decoder config (its decoder-only twin of equal size is
/// derived with <see cref="ParameterCount.DecoderOnlyTwin"/>), the grid of input lengths x output lengths x batch
/// sizes, and how often each point is repeated (at least once, then again while under RepeatBudgetSeconds, up to
/// MaxRepeats; see GenerationBenchmark for how repeats are summarised).
/// </summary>
public sealed record GenerationBenchSettings(
    TransformerConfig EncoderDecoder,
    IReadOnlyList<int> InputLengths,
    IReadOnlyList<int> OutputLengths,
    IReadOnlyList<int> BatchSizes,
    int Threads,
    int MaxRepeats = 5,
    double RepeatBudgetSeconds = 1.5,
    long Seed = 1234,
    int BosId = 1)
{
    /// <summary>
    /// The configuration of `make bench`: a 2/3 - 1/3 split like the 330M reference (6 encoder + 3 decoder layers),
    /// d_model 256, 4 query heads x 64 sharing 2 KV heads, GELU FFN 1024, the reference vocabulary 32128 with tied
    /// embeddings; dropout off (inference). Sized so the whole grid runs in about three minutes on 2 cores.
    /// </summary>
    public static GenerationBenchSettings Default(int threads) => new(
        new TransformerConfig(VocabSize: 32128, DModel: 256, EncoderLayers: 6, DecoderLayers: 3,
            Heads: 4, KvHeads: 2, HeadDim: 64, FfnDim: 1024, Dropout: 0.0),
        InputLengths: [128, 512, 2048],
        OutputLengths: [32, 128],
        BatchSizes: [1, 8],
        Threads: threads);

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first setting that cannot be run.</summary>
    public void Validate()
    {
        EncoderDecoder.Validate();
        if (EncoderDecoder.IsDecoderOnly)
            throw new ArgumentException("GenerationBenchSettings.EncoderDecoder has EncoderLayers = 0; give the encoder-decoder config, its twin is derived.");
        RequirePositive(InputLengths, nameof(InputLengths));
        RequirePositive(OutputLengths, nameof(OutputLengths));
        RequirePositive(BatchSizes, nameof(BatchSizes));
        if (Threads <= 0)
            throw new ArgumentException($"GenerationBenchSettings.Threads = {Threads} must be positive.");
        if (MaxRepeats <= 0)
            throw new ArgumentException($"GenerationBenchSettings.MaxRepeats = {MaxRepeats} must be positive.");
        if (BosId < 0 || BosId >= EncoderDecoder.VocabSize || BosId == EncoderDecoder.PadId)
            throw new ArgumentException(
                $"GenerationBenchSettings.BosId = {BosId} must be a token id below {EncoderDecoder.VocabSize} other than PadId {EncoderDecoder.PadId}.");
    }

    private static void RequirePositive(IReadOnlyList<int> values, string name)
    {
        if (values.Count == 0 || values.Any(v => v <= 0))
            throw new ArgumentException($"GenerationBenchSettings.{name} = [{string.Join(", ", values)}] must be a non-empty list of positive numbers.");
    }
}
