using Training.Shared.Data;
using Training.Shared.Models;
using static TorchSharp.torch;
using Generator = Training.Shared.Models.Generator;

namespace Training.Shared.Objectives;

/// <summary>
/// One task example as token ids. Prompt: the prompt's tokens then EOS, at most InputLength (a longer prompt keeps its
/// end, where the question usually is). Target: the target's tokens then EOS, at most TargetLength (a longer target keeps
/// its start and loses its EOS).
/// </summary>
public sealed record TaskTokens(long[] Prompt, long[] Target)
{
    public static TaskTokens From(TaskExample example, ITokenizer tokenizer, int inputLength, int targetLength)
    {
        var eos = tokenizer.Special.Eos;
        var prompt = tokenizer.Encode(example.Prompt).Select(t => (long)t).Append(eos).ToArray();
        var target = tokenizer.Encode(example.Target).Select(t => (long)t).Append(eos).ToArray();
        return new TaskTokens(prompt.Length > inputLength ? prompt[^inputLength..] : prompt,
            target.Length > targetLength ? target[..targetLength] : target);
    }
}

/// <summary>Turns task examples (prompt/target pairs) into a model's loss; the task counterpart of <see cref="ITrainingObjective"/>.</summary>
public interface ITaskObjective
{
    string Name { get; }

    /// <param name="globalIndices">Each example's global index in the task stream (seeds per-example randomness).</param>
    ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<TaskTokens> examples, IReadOnlyList<long> globalIndices, Device device);
}

/// <summary>Padding and teacher forcing shared by the task objectives, distillation and evaluation.</summary>
public static class TaskBatch
{
    /// <summary>[rows, longest] int64, each row followed by <paramref name="pad"/> (encoder inputs, decoder inputs, labels).</summary>
    public static Tensor RightPadded(IReadOnlyList<long[]> rows, long pad, Device device)
    {
        var width = Math.Max(1, rows.Max(r => r.Length));
        return ObjectiveMath.ToTensor(rows.Select(r => Pad(r, width, pad, left: false)).ToList(), device);
    }

    /// <summary>[rows, longest] int64, each row preceded by <paramref name="pad"/> (decoder-only prompts).</summary>
    public static Tensor LeftPadded(IReadOnlyList<long[]> rows, long pad, Device device)
    {
        var width = Math.Max(1, rows.Max(r => r.Length));
        return ObjectiveMath.ToTensor(rows.Select(r => Pad(r, width, pad, left: true)).ToList(), device);
    }

    public static long[] Pad(long[] row, int width, long pad, bool left)
    {
        var padded = new long[width];
        Array.Fill(padded, pad);
        Array.Copy(row, 0, padded, left ? width - row.Length : 0, row.Length);
        return padded;
    }

    /// <summary>Teacher forcing: the decoder reads [BOS] + target[:-1] and predicts target.</summary>
    public static long[] DecoderInput(long[] target, long bos)
    {
        var input = new long[target.Length];
        input[0] = bos;
        Array.Copy(target, 0, input, 1, target.Length - 1);
        return input;
    }

    /// <summary>Labels with padding ignored: a target right-padded to <paramref name="width"/> with <see cref="ObjectiveMath.IgnoreIndex"/>.</summary>
    public static long[] Labels(long[] target, int width) => Pad(target, width, ObjectiveMath.IgnoreIndex, left: false);
}

/// <summary>
/// seq2seq: cross-entropy on the target. An encoder-decoder reads the prompt in its encoder and the target teacher-forced
/// in its decoder; a causal model reads prompt then target and is scored on the target tokens only.
/// </summary>
public sealed class Seq2SeqObjective(SpecialTokens special) : ITaskObjective
{
    public string Name => "seq2seq";

    public ObjectiveOutput Compute(ILanguageModel model, IReadOnlyList<TaskTokens> examples, IReadOnlyList<long> globalIndices, Device device)
    {
        switch (model)
        {
            case EncoderDecoderModel encoderDecoder:
            {
                var width = examples.Max(e => e.Target.Length);
                var encoderInput = TaskBatch.RightPadded(examples.Select(e => e.Prompt).ToList(), special.Pad, device);
                var decoderInput = TaskBatch.RightPadded(examples.Select(e => TaskBatch.DecoderInput(e.Target, special.Bos)).ToList(), special.Pad, device);
                var labels = ObjectiveMath.ToTensor(examples.Select(e => TaskBatch.Labels(e.Target, width)).ToList(), device);
                var (loss, correct, counted) = ObjectiveMath.CrossEntropy(encoderDecoder.forward(encoderInput, decoderInput), labels);
                return new ObjectiveOutput(loss, correct, counted, encoderInput.numel() + decoderInput.numel());
            }
            case ICausalLanguageModel causal:
            {
                // Position t predicts token t + 1: the prompt's last token (EOS) predicts the target's first.
                var sequences = examples.Select(e => e.Prompt.Concat(e.Target).ToArray()).ToList();
                var width = sequences.Max(s => s.Length) - 1;
                var inputs = TaskBatch.RightPadded(sequences.Select(s => s[..^1]).ToList(), special.Pad, device);
                var labels = ObjectiveMath.ToTensor(examples.Select(e =>
                {
                    var row = Enumerable.Repeat(ObjectiveMath.IgnoreIndex, e.Prompt.Length - 1).Concat(e.Target).ToArray();
                    return TaskBatch.Pad(row, width, ObjectiveMath.IgnoreIndex, left: false);
                }).ToList(), device);
                var (loss, correct, counted) = ObjectiveMath.CrossEntropy(causal.forward(inputs), labels);
                return new ObjectiveOutput(loss, correct, counted, inputs.numel());
            }
            default:
                throw new ArgumentException($"seq2seq trains an encoder-decoder or a causal model, not {model.Config.Architecture}");
        }
    }
}

/// <summary>Held-out exact match: greedy generation from each prompt compared with its target (EOS excluded).</summary>
public static class TaskEvaluation
{
    /// <returns>How many generations equal their target exactly; null for a model this cannot generate with.</returns>
    public static int? ExactMatches(ILanguageModel model, IReadOnlyList<TaskTokens> examples, SpecialTokens special, int maxNewTokens, Device device)
    {
        var options = new GenerationOptions(maxNewTokens);
        long[][] generated;
        switch (model)
        {
            case EncoderDecoderModel encoderDecoder:
                generated = Generator.Generate(encoderDecoder, TaskBatch.RightPadded(examples.Select(e => e.Prompt).ToList(), special.Pad, device),
                    special.Bos, special.Eos, options);
                break;
            case DecoderOnlyModel decoder:
                generated = Generator.Generate(decoder, TaskBatch.LeftPadded(examples.Select(e => e.Prompt).ToList(), special.Pad, device),
                    special.Eos, options);
                break;
            default:
                return null;
        }
        var matches = 0;
        for (var i = 0; i < examples.Count; i++)
            if (WithoutEos(generated[i], special.Eos).SequenceEqual(WithoutEos(examples[i].Target, special.Eos))) matches++;
        return matches;
    }

    private static IEnumerable<long> WithoutEos(long[] tokens, long eos) => tokens.TakeWhile(t => t != eos);
}
