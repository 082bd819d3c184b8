using System.Diagnostics;
using NUnit.Framework;
using Training.Shared.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Tests.Models;

public class ParameterCountTests
{
    [Test]
    public void Analytic_Reference330M_MatchesSpecBreakdown()
    {
        var c = TransformerConfig.Reference330M;
        Assert.Multiple(() =>
        {
            Assert.That(ParameterCount.EncoderLayer(c), Is.EqualTo(9_577_216));
            Assert.That(ParameterCount.DecoderLayer(c), Is.EqualTo(10_759_680));
            Assert.That(ParameterCount.Embedding(c), Is.EqualTo(32_899_072));
            Assert.That(ParameterCount.FinalNorms(c), Is.EqualTo(2_048));
            Assert.That(ParameterCount.EncoderDecoder(c), Is.EqualTo(332_042_240));
        });
    }

    [Test]
    public void Count_RealReference330M_Equals332042240()
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        using var model = new EncoderDecoderModel(TransformerConfig.Reference330M);
        var counted = ParameterCount.Count(model);
        TestContext.Out.WriteLine($"built and counted the 330M model in {clock.ElapsedMilliseconds} ms");
        Assert.That(counted, Is.EqualTo(332_042_240));
    }

    [TestCase(MlpKind.GeluTanh, true)]
    [TestCase(MlpKind.SwiGlu, true)]
    [TestCase(MlpKind.GeluTanh, false)]
    [TestCase(MlpKind.SwiGlu, false)]
    public void EncoderDecoder_TinyConfigs_AnalyticEqualsActual(MlpKind mlp, bool tie)
    {
        using var scope = NewDisposeScope();
        var c = TinyConfigs.EncoderDecoder(mlp, tie) with { EncoderLayers = 3, DecoderLayers = 2, Heads = 6, KvHeads = 3 };
        using var model = new EncoderDecoderModel(c);
        Assert.That(ParameterCount.Count(model), Is.EqualTo(ParameterCount.EncoderDecoder(c)));
    }

    [TestCase(MlpKind.GeluTanh, true)]
    [TestCase(MlpKind.SwiGlu, true)]
    [TestCase(MlpKind.SwiGlu, false)]
    public void DecoderOnly_TinyConfigs_AnalyticEqualsActual(MlpKind mlp, bool tie)
    {
        using var scope = NewDisposeScope();
        var c = TinyConfigs.DecoderOnly(mlp, tie);
        using var model = new DecoderOnlyModel(c);
        Assert.That(ParameterCount.Count(model), Is.EqualTo(ParameterCount.DecoderOnly(c)));
    }

    [Test]
    public void DecoderOnlyTwin_Reference330M_Has31LayersOfNearlyEqualSize()
    {
        var twin = ParameterCount.DecoderOnlyTwin(TransformerConfig.Reference330M);
        var twinTotal = ParameterCount.DecoderOnly(twin);
        Assert.That(twin.DecoderLayers, Is.EqualTo(31));
        Assert.That(twin.EncoderLayers, Is.Zero);
        Assert.That(twinTotal, Is.EqualTo(32_899_072 + 31L * 9_577_216 + 1_024));
        Assert.That(Math.Abs(twinTotal - 332_042_240) / 332_042_240.0, Is.LessThan(0.02));
    }

    [Test]
    public void DecoderOnly_EncoderDecoderConfig_ThrowsNamingEncoderLayers()
    {
        var error = Assert.Throws<ArgumentException>(() => ParameterCount.DecoderOnly(TransformerConfig.Reference330M))!;
        Assert.That(error.Message, Does.Contain("EncoderLayers = 20"));
    }

    [Test]
    public void TrainingFlopsPerToken_DecoderOnly_MatchesSixNPlusAttentionTerm()
    {
        // Decoder-only, tied head: 6 * (matmul weights + head) + 12 * L * T * H * hd.
        var c = TinyConfigs.DecoderOnly();
        const int context = 16;
        double d = c.DModel, a = c.AttentionDim, kv = c.KeyValueDim, f = c.FfnDim, v = c.VocabSize;
        var matmulWeights = c.DecoderLayers * (2 * d * a + 2 * d * kv + 2 * d * f) + v * d;
        var expected = 6 * matmulWeights + 12.0 * c.DecoderLayers * context * a;
        Assert.That(ParameterCount.TrainingFlopsPerToken(c, 0, context), Is.EqualTo(expected).Within(1e-6).Percent);
    }

    [Test]
    public void TrainingFlopsPerExample_Reference330M_CountsEncoderOnInputAndCrossKeyValuesOnMemory()
    {
        // Written out per part for input 512 / target 114 (the span-corruption lengths of SPEC.md).
        var c = TransformerConfig.Reference330M;
        const double s = 512, t = 114, d = 1024, a = 384, kv = 192, f = 4096, v = 32128;
        var encoder = 20 * s * (6 * (2 * d * a + 2 * d * kv + 2 * d * f) + 12 * s * a);
        var decoder = 10 * t * (6 * (2 * d * a + 2 * d * kv + 2 * d * a + 2 * d * f) + 12 * (t + s) * a);
        var crossKeyValues = 10 * s * 6 * (2 * d * kv);
        var head = t * 6 * v * d;
        var expected = encoder + decoder + crossKeyValues + head;

        Assert.That(ParameterCount.TrainingFlopsPerExample(c, 512, 114), Is.EqualTo(expected).Within(1e-9).Percent);
        Assert.That(ParameterCount.TrainingFlopsPerToken(c, 512, 114), Is.EqualTo(expected / 626).Within(1e-9).Percent);
    }
}
