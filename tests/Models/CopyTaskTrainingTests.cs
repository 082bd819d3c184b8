using System.Diagnostics;
using NUnit.Framework;
using TorchSharp;
using Training.Shared.Models;
using static TorchSharp.torch;
using Generator = Training.Shared.Models.Generator;

namespace Training.Tests.Models;

/// <summary>End-to-end learning check: a tiny encoder-decoder must learn to copy its input.</summary>
public class CopyTaskTrainingTests
{
    private const int Length = 8;
    private const int FirstSymbol = 3;
    private const int VocabSize = 32;
    private const int MaxSteps = 600;
    // Mean cross-entropy per token at which greedy copying is reliably above 95% correct.
    private const double LossGoal = 0.05;

    private static readonly TransformerConfig Config = new(
        VocabSize: VocabSize, DModel: 64, EncoderLayers: 2, DecoderLayers: 2, Heads: 4, KvHeads: 2, HeadDim: 16,
        FfnDim: 128, Dropout: 0.0, PadId: TinyConfigs.Pad);

    /// <summary>Rows of Length distinct symbols (no repeats, so copying is unambiguous by content).</summary>
    private static long[][] Sequences(Random random, int count) =>
        Enumerable.Range(0, count)
            .Select(_ => Enumerable.Range(FirstSymbol, VocabSize - FirstSymbol)
                .OrderBy(_ => random.Next()).Take(Length).Select(s => (long)s).ToArray())
            .ToArray();

    /// <summary>encoder: x + EOS; decoder input: BOS + x; labels: x + EOS.</summary>
    private static (Tensor Encoder, Tensor Decoder, Tensor Labels) Batch(long[][] rows)
    {
        var encoder = rows.Select(r => r.Append(TinyConfigs.Eos).ToArray()).ToArray();
        var decoder = rows.Select(r => r.Prepend(TinyConfigs.Bos).ToArray()).ToArray();
        return (ModelTensors.Tokens(encoder), ModelTensors.Tokens(decoder), ModelTensors.Tokens(encoder));
    }

    [Test]
    public void Train_CopyTask_ReachesNinetyFivePercentGreedyTokenAccuracy()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var random = new Random(7);
        var model = new EncoderDecoderModel(Config);
        using var optimizer = optim.AdamW(model.parameters(), lr: 3e-3, beta1: 0.9, beta2: 0.98, weight_decay: 0.01);
        var (evalEncoder, _, evalLabels) = Batch(Sequences(new Random(1234), 64));

        var clock = Stopwatch.StartNew();
        var steps = 0;
        var loss = double.NaN;
        for (; steps < MaxSteps; steps++)
        {
            using var stepScope = NewDisposeScope();
            model.train();
            var (encoder, decoder, labels) = Batch(Sequences(random, 64));
            var logits = model.forward(encoder, decoder);
            var lossTensor = nn.functional.cross_entropy(logits.reshape(-1, VocabSize), labels.reshape(-1), ignore_index: TinyConfigs.Pad);
            optimizer.zero_grad();
            lossTensor.backward();
            optimizer.step();
            loss = lossTensor.item<float>();
            if (steps % 10 == 9 && loss < LossGoal)
                break;
        }

        var generated = Generator.Generate(model, evalEncoder, TinyConfigs.Bos, TinyConfigs.Eos, new GenerationOptions(MaxNewTokens: Length + 1));
        var expected = evalLabels.data<long>().ToArray();
        var correct = 0;
        for (var row = 0; row < generated.Length; row++)
            for (var t = 0; t < Length + 1; t++)
                correct += t < generated[row].Length && generated[row][t] == expected[row * (Length + 1) + t] ? 1 : 0;
        var accuracy = correct / (double)(generated.Length * (Length + 1));
        TestContext.Out.WriteLine($"{steps + 1} steps, loss {loss:F4}, greedy token accuracy {accuracy:P1}, {clock.Elapsed.TotalSeconds:F1} s");

        Assert.That(accuracy, Is.GreaterThanOrEqualTo(0.95));
    }
}
