using TorchSharp;
using Training.Shared.Data;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Shared.Objectives;

/// <summary>One masked example: what the encoder reads and, per position, the token to predict (or IgnoreIndex).</summary>
/// <param name="Masked">Positions chosen for prediction, ascending.</param>
public sealed record MaskedExample(int[] Input, long[] Labels, int[] Masked);

/// <summary>
/// Masked language modelling (BERT / ModernBERT, the Ettin encoder's objective). Of each window's ordinary tokens
/// (not pad, BOS, EOS or a sentinel), round(rate * count) are chosen uniformly without replacement; each chosen token
/// becomes the mask id (the tokenizer's first sentinel) with probability 0.8, a uniformly random ordinary id with
/// probability 0.1, or stays itself (0.1); the loss and accuracy are taken over the chosen positions only.
/// The rate is <c>maskRate</c> in training and <c>evalMaskRate</c> when the model is in eval mode (Ettin: 30% / 15%).
/// The choice is a pure function of (seed, the example's global index), like span corruption's noise.
/// </summary>
public sealed class MaskedLmObjective : ITrainingObjective
{
    public const double MaskTokenShare = 0.8;
    public const double RandomTokenShare = 0.1;

    private readonly int sequenceLength;
    private readonly double maskRate;
    private readonly double evalMaskRate;
    private readonly SpecialTokens special;
    private readonly long seed;

    public MaskedLmObjective(int sequenceLength, double maskRate, double evalMaskRate, SpecialTokens special, long seed)
    {
        if (sequenceLength < 2) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "must be >= 2");
        if (maskRate is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(maskRate), maskRate, "mask rate must be in (0, 1)");
        if (evalMaskRate is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(evalMaskRate), evalMaskRate, "eval mask rate must be in (0, 1)");
        if (special.SentinelCount < 1)
            throw new ArgumentException("mlm replaces tokens by a mask id, the tokenizer's first sentinel: reserve at least one (tokenizer.sentinels >= 1)", nameof(special));
        this.sequenceLength = sequenceLength;
        this.maskRate = maskRate;
        this.evalMaskRate = evalMaskRate;
        this.special = special;
        this.seed = seed;
    }

    public string Name => "mlm";
    public int WindowLength => sequenceLength;

    /// <summary>The id a masked token is replaced by.</summary>
    public int MaskId => special.Sentinel(0);

    /// <summary>Masks one window at <paramref name="rate"/>; a pure function of its arguments.</summary>
    public MaskedExample Mask(ReadOnlySpan<int> tokens, ulong exampleSeed, double rate)
    {
        var random = new SplitMix64(exampleSeed);
        var eligible = new List<int>(tokens.Length);
        for (var i = 0; i < tokens.Length; i++)
            if (!special.IsSpecial(tokens[i])) eligible.Add(i);
        var count = eligible.Count == 0 ? 0 : Math.Clamp((int)Math.Round(rate * eligible.Count, MidpointRounding.ToEven), 1, eligible.Count);

        // The first `count` entries of a partial Fisher-Yates shuffle: a uniform subset.
        for (var i = 0; i < count; i++)
        {
            var j = i + random.Below(eligible.Count - i);
            (eligible[i], eligible[j]) = (eligible[j], eligible[i]);
        }
        var masked = eligible.Take(count).Order().ToArray();

        var input = tokens.ToArray();
        var labels = new long[tokens.Length];
        Array.Fill(labels, ObjectiveMath.IgnoreIndex);
        foreach (var position in masked)
        {
            labels[position] = tokens[position];
            var draw = random.Unit();
            if (draw < MaskTokenShare) input[position] = MaskId;
            else if (draw < MaskTokenShare + RandomTokenShare) input[position] = RandomOrdinaryId(random);
        }
        return new MaskedExample(input, labels, masked);
    }

    /// <summary>Uniform over the ids below the sentinels that are not pad, BOS or EOS.</summary>
    private int RandomOrdinaryId(SplitMix64 random)
    {
        while (true)
        {
            var id = random.Below(special.FirstSentinelId);
            if (!special.IsSpecial(id)) return id;
        }
    }

    public ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<int[]> windows, IReadOnlyList<long> globalIndices, Device device)
    {
        if (model is not IMaskedLanguageModel encoder)
            throw new ArgumentException($"mlm trains a bidirectional encoder (model.arch: encoder-only), not {model.Config.Architecture}");
        // Evaluation reads the model's mode: the trainer puts it in eval mode for the eval split.
        var rate = ((nn.Module)model).training ? maskRate : evalMaskRate;
        var inputs = new List<long[]>(windows.Count);
        var labels = new List<long[]>(windows.Count);
        for (var i = 0; i < windows.Count; i++)
        {
            var example = Mask(windows[i], ObjectiveMath.ExampleSeed(seed, globalIndices[i]), rate);
            inputs.Add(Array.ConvertAll(example.Input, t => (long)t));
            labels.Add(example.Labels);
        }
        if (labels.All(row => row.All(label => label == ObjectiveMath.IgnoreIndex)))
            throw new InvalidDataException(
                $"mlm found no ordinary token to mask in a batch of {windows.Count} windows (only pad, BOS, EOS or sentinels): check the data and tokenizer");
        var inputTensor = ObjectiveMath.ToTensor(inputs, device);
        var labelTensor = ObjectiveMath.ToTensor(labels, device);
        var logits = encoder.forward(inputTensor);
        var (loss, correct, counted) = ObjectiveMath.CrossEntropy(logits, labelTensor);
        return new ObjectiveOutput(loss, correct, counted, inputTensor.numel());
    }

    /// <summary>SplitMix64: a small generator whose sequence, unlike System.Random's, is fixed forever.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong state = seed;

        private ulong Next()
        {
            var z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, 1).</summary>
        public double Unit() => (Next() >> 11) * (1.0 / (1UL << 53));

        /// <summary>Uniform in [0, bound).</summary>
        public int Below(int bound) => (int)(Unit() * bound);
    }
}
