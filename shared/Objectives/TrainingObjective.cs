using TorchSharp;
using Training.Shared.Data;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Shared.Objectives;

/// <summary>What one forward pass of an objective produced: the mean loss (with graph) and token counts.</summary>
/// <param name="Loss">Mean cross-entropy over the target tokens of the batch (scalar, requires grad in training).</param>
/// <param name="CorrectTokens">Target tokens the model's argmax predicted correctly.</param>
/// <param name="TargetTokens">Target tokens the loss was taken over.</param>
/// <param name="ProcessedTokens">Tokens the model read (encoder + decoder inputs): the tokens/s numerator.</param>
public sealed record ObjectiveOutput(Tensor Loss, long CorrectTokens, long TargetTokens, long ProcessedTokens);

/// <summary>Turns raw token windows from the data stream into a model's loss.</summary>
public interface ITrainingObjective
{
    string Name { get; }

    /// <summary>How many raw tokens each example takes from the packed stream.</summary>
    int WindowLength { get; }

    /// <param name="windows">Raw windows of <see cref="WindowLength"/> tokens.</param>
    /// <param name="globalIndices">Each window's global example index: it seeds per-example randomness so the
    /// result does not depend on how a batch was split across ranks.</param>
    ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<int[]> windows, IReadOnlyList<long> globalIndices, Device device);
}

public static class ObjectiveMath
{
    public const long IgnoreIndex = -100;

    /// <summary>SplitMix64 of (seed, index): a per-example seed with no correlation between neighbours.</summary>
    public static ulong ExampleSeed(long seed, long index)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 0x632BE59BD9B4E019UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Rows of equal length as a [rows, length] int64 tensor on <paramref name="device"/>.</summary>
    public static Tensor ToTensor(IReadOnlyList<long[]> rows, Device device)
    {
        var length = rows[0].Length;
        var flat = new long[rows.Count * length];
        for (var r = 0; r < rows.Count; r++)
        {
            if (rows[r].Length != length)
                throw new ArgumentException($"row {r} has {rows[r].Length} tokens, expected {length}");
            Array.Copy(rows[r], 0, flat, r * length, length);
        }
        return tensor(flat, new long[] { rows.Count, length }, ScalarType.Int64).to(device);
    }

    /// <summary>
    /// A float32 tensor of <paramref name="shape"/> holding <paramref name="values"/>, copied straight into native memory:
    /// TorchSharp's tensor(float[]) first clones the array, and a large managed copy per step means more collections,
    /// each a chance for TorchSharp's Scalar finalizer race (docs/architecture.md, rules).
    /// </summary>
    public static Tensor FloatTensor(float[] values, long[] shape, Device device)
    {
        var host = empty(shape, ScalarType.Float32, CPU);
        host.bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan());
        return device.type == DeviceType.CPU ? host : host.to(device);
    }

    /// <summary>Mean cross-entropy over labels that are not <see cref="IgnoreIndex"/>, plus argmax accuracy.</summary>
    public static (Tensor Loss, long Correct, long Counted) CrossEntropy(Tensor logits /*[B,T,V]*/, Tensor labels /*[B,T]*/)
    {
        var vocab = logits.shape[^1];
        var flatLogits = logits.reshape(-1, vocab);
        var flatLabels = labels.reshape(-1);
        var loss = nn.functional.cross_entropy(flatLogits, flatLabels, ignore_index: IgnoreIndex);
        using var _ = no_grad();
        var counted = flatLabels.ne(IgnoreIndex);
        var correct = flatLogits.argmax(-1).eq(flatLabels).logical_and(counted).sum().item<long>();
        return (loss, correct, counted.sum().item<long>());
    }
}

/// <summary>T5-style span-corruption pretraining of an encoder-decoder.</summary>
public sealed class SpanCorruptionObjective : ITrainingObjective
{
    private readonly SpanCorruption _corruption;
    private readonly SpecialTokens _special;
    private readonly long _seed;

    public SpanCorruptionObjective(SpanCorruption corruption, SpecialTokens special, long seed)
    {
        _corruption = corruption;
        _special = special;
        _seed = seed;
    }

    public string Name => "span-corruption";
    public int WindowLength => _corruption.Lengths.RawLength;

    public ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<int[]> windows, IReadOnlyList<long> globalIndices, Device device)
    {
        if (model is not EncoderDecoderModel encoderDecoder)
            throw new ArgumentException("span corruption trains an encoder-decoder model (model.arch: encoder-decoder)");
        var inputs = new List<long[]>(windows.Count);
        var decoderInputs = new List<long[]>(windows.Count);
        var labels = new List<long[]>(windows.Count);
        for (var i = 0; i < windows.Count; i++)
        {
            var example = _corruption.Corrupt(windows[i], ObjectiveMath.ExampleSeed(_seed, globalIndices[i]));
            inputs.Add(Array.ConvertAll(example.Input, t => (long)t));
            // Teacher forcing: the decoder reads [BOS] + target[:-1] and predicts target.
            var decoderInput = new long[example.Target.Length];
            decoderInput[0] = _special.Bos;
            for (var t = 1; t < decoderInput.Length; t++) decoderInput[t] = example.Target[t - 1];
            decoderInputs.Add(decoderInput);
            labels.Add(Array.ConvertAll(example.Target, t => t == _special.Pad ? ObjectiveMath.IgnoreIndex : t));
        }
        var encoderTensor = ObjectiveMath.ToTensor(inputs, device);
        var decoderTensor = ObjectiveMath.ToTensor(decoderInputs, device);
        var labelTensor = ObjectiveMath.ToTensor(labels, device);
        var logits = encoderDecoder.forward(encoderTensor, decoderTensor);
        var (loss, correct, counted) = ObjectiveMath.CrossEntropy(logits, labelTensor);
        return new ObjectiveOutput(loss, correct, counted, encoderTensor.numel() + decoderTensor.numel());
    }
}

/// <summary>Causal language modelling of any causal model (decoder-only, GPT family, Ettin decoder): predict token t+1 from tokens up to t.</summary>
public sealed class CausalLmObjective : ITrainingObjective
{
    private readonly int _sequenceLength;

    public CausalLmObjective(int sequenceLength)
    {
        if (sequenceLength < 2) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "must be >= 2");
        _sequenceLength = sequenceLength;
    }

    public string Name => "clm";
    public int WindowLength => _sequenceLength + 1;

    public ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<int[]> windows, IReadOnlyList<long> globalIndices, Device device)
    {
        if (model is not ICausalLanguageModel decoder)
            throw new ArgumentException(
                $"clm trains a causal model (decoder-only, gpt, parallel-gpt, lc-gpt, cc-gpt, ettin-decoder), not {model.Config.Architecture}");
        var inputs = new List<long[]>(windows.Count);
        var labels = new List<long[]>(windows.Count);
        foreach (var window in windows)
        {
            inputs.Add(Array.ConvertAll(window[..^1], t => (long)t));
            labels.Add(Array.ConvertAll(window[1..], t => (long)t));
        }
        var inputTensor = ObjectiveMath.ToTensor(inputs, device);
        var labelTensor = ObjectiveMath.ToTensor(labels, device);
        // A large vocabulary's full logits dominate the step: a tied head takes the loss in chunks from the hidden states.
        var (loss, correct, counted) = decoder is ITiedHeadCausalModel { HeadIsTied: true } tied
            && ChunkedCrossEntropy.Applies(inputTensor.numel(), model.Config.VocabSize)
            ? ChunkedCrossEntropy.Compute(tied.Hidden(inputTensor), tied.EmbeddingWeight, labelTensor)
            : ObjectiveMath.CrossEntropy(decoder.forward(inputTensor), labelTensor);
        return new ObjectiveOutput(loss, correct, counted, inputTensor.numel());
    }
}
