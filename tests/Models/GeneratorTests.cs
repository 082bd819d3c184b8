using NUnit.Framework;
using TorchSharp;
using Training.Shared.Models;
using static TorchSharp.torch;
using static Training.Tests.Models.ModelTensors;
using Generator = Training.Shared.Models.Generator;

namespace Training.Tests.Models;

public class GeneratorTests
{
    // float64 models: cached and uncached paths differ only by rounding, far below any logit gap.
    // Weights are scaled up from the 0.02 init so that the next token depends strongly on every earlier
    // position: a cache that loses or misplaces a position then changes the generated tokens.
    private static EncoderDecoderModel EncoderDecoder()
    {
        manual_seed(21);
        return Sharpen(new EncoderDecoderModel(TinyConfigs.EncoderDecoder()).to(ScalarType.Float64));
    }

    private static DecoderOnlyModel DecoderOnly()
    {
        manual_seed(22);
        return Sharpen(new DecoderOnlyModel(TinyConfigs.DecoderOnly()).to(ScalarType.Float64));
    }

    private static T Sharpen<T>(T model) where T : nn.Module
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith("weight") && !name.Contains("norm", StringComparison.OrdinalIgnoreCase))
                parameter.mul_(SharpenFactor);
        }
        return model;
    }

    private const double SharpenFactor = 10;

    private static Tensor EncoderBatch() => Tokens([5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0], [14, 15, 16, 17, 18, 0]);

    private static Tensor LeftPaddedPrompts() => Tokens([0, 0, 0, 5, 6, 7], [8, 9, 10, 11, 12, 13], [0, 14, 15, 16, 17, 18]);

    private static readonly GenerationOptions Greedy = new(MaxNewTokens: 10);
    private static readonly GenerationOptions Sampled = new(MaxNewTokens: 10, Temperature: 1.0, TopK: 8, Seed: 1234);

    // An EOS id the models below never choose, so rows run to MaxNewTokens unless a test picks a real one.
    private const int UnusedEos = TinyConfigs.Eos;

    [Test]
    public void Generate_EncoderDecoderGreedy_CachedEqualsUncached()
    {
        using var scope = NewDisposeScope();
        var model = EncoderDecoder();
        var cached = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Greedy);
        var uncached = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Greedy with { UseCache = false });

        Assert.That(cached, Has.Length.EqualTo(3));
        Assert.That(cached, Is.EqualTo(uncached));
        Assert.That(cached.Select(r => r.Length).Max(), Is.GreaterThan(1));
    }

    [Test]
    public void Generate_EncoderDecoderSampled_CachedEqualsUncachedForSameSeed()
    {
        using var scope = NewDisposeScope();
        var model = EncoderDecoder();
        var cached = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Sampled);
        var uncached = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Sampled with { UseCache = false });
        var otherSeed = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Sampled with { Seed = 99 });

        Assert.That(cached, Is.EqualTo(uncached));
        Assert.That(otherSeed, Is.Not.EqualTo(cached));
    }

    [Test]
    public void Generate_DecoderOnlyGreedy_CachedEqualsUncached()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        var cached = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Greedy);
        var uncached = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Greedy with { UseCache = false });

        Assert.That(cached, Has.Length.EqualTo(3));
        Assert.That(cached, Is.EqualTo(uncached));
    }

    [Test]
    public void Generate_DecoderOnlySampled_CachedEqualsUncachedForSameSeed()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        var cached = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Sampled);
        var uncached = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Sampled with { UseCache = false });
        var again = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Sampled);

        Assert.That(cached, Is.EqualTo(uncached));
        Assert.That(again, Is.EqualTo(cached));
    }

    [Test]
    public void Generate_DecoderOnlyLeftPaddedRow_SameTokensAsUnpaddedPrompt()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        var batched = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Greedy);
        var alone = Generator.Generate(model, Tokens([5, 6, 7]), UnusedEos, Greedy);
        Assert.That(batched[0], Is.EqualTo(alone[0]));
    }

    [Test]
    public void Generate_RowReachesEos_StopsThatRowOnly()
    {
        using var scope = NewDisposeScope();
        var model = EncoderDecoder();
        var free = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, UnusedEos, Greedy);
        // Declare the token row 0 emits third to be EOS: row 0 must end right there, including it.
        var eos = (int)free[0][2];
        var stopped = Generator.Generate(model, EncoderBatch(), TinyConfigs.Bos, eos, Greedy);

        Assert.That(stopped[0], Is.EqualTo(free[0].Take(Array.IndexOf(free[0], (long)eos) + 1).ToArray()));
        for (var row = 0; row < 3; row++)
        {
            var eosAt = Array.IndexOf(stopped[row], (long)eos);
            Assert.That(eosAt == -1 ? stopped[row].Length : eosAt + 1, Is.EqualTo(stopped[row].Length), $"row {row} continued after EOS");
            Assert.That(stopped[row], Is.EqualTo(free[row].Take(stopped[row].Length).ToArray()), $"row {row} prefix");
        }
    }

    [Test]
    public void Generate_TopKOne_EqualsGreedy()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        var greedy = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Greedy);
        var topOne = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Greedy with { Temperature = 0.7, TopK = 1, Seed = 5 });
        Assert.That(topOne, Is.EqualTo(greedy));
    }

    [Test]
    public void Generate_NeverEmitsPadAndRestoresTrainingMode()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        model.train();
        var rows = Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Sampled with { Temperature = 5.0, TopK = 0, MaxNewTokens = 30 });
        Assert.That(rows.SelectMany(r => r), Has.None.EqualTo((long)TinyConfigs.Pad));
        Assert.That(model.training, Is.True);
        Assert.That(is_grad_enabled(), Is.True);
    }

    [Test]
    public void Generate_BadOptions_ThrowsNamingField()
    {
        using var scope = NewDisposeScope();
        var model = DecoderOnly();
        var error = Assert.Throws<ArgumentException>(() =>
            Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, new GenerationOptions(MaxNewTokens: 0)))!;
        Assert.That(error.Message, Does.Contain("MaxNewTokens"));
        Assert.Throws<ArgumentException>(() =>
            Generator.Generate(model, LeftPaddedPrompts(), UnusedEos, Sampled with { Temperature = -1 }));
        Assert.Throws<ArgumentException>(() =>
            Generator.Generate(model, LeftPaddedPrompts(), eosId: 37, Greedy));
    }

    [Test]
    public void Generate_BosEqualsPad_ThrowsNamingBosId()
    {
        using var scope = NewDisposeScope();
        var model = EncoderDecoder();
        var error = Assert.Throws<ArgumentException>(() =>
            Generator.Generate(model, EncoderBatch(), bosId: TinyConfigs.Pad, TinyConfigs.Eos, Greedy))!;
        Assert.That(error.ParamName, Is.EqualTo("bosId"));
        Assert.That(error.Message, Does.Contain("PadId"));
    }
}
