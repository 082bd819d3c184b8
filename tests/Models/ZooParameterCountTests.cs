using NUnit.Framework;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Tests.Models;

/// <summary>Analytic parameter counts of every architecture against real modules, and the Ettin sizes against SPEC.md.</summary>
public class ZooParameterCountTests
{
    private static IEnumerable<ModelArchitecture> AllArchitectures => ZooConfigs.All;
    private static IEnumerable<string> Presets => EttinPresets.Names;

    [TestCaseSource(nameof(AllArchitectures))]
    public void Breakdown_TinyModelOfEachArchitecture_MatchesTheModulesParameters(ModelArchitecture architecture)
    {
        using var scope = NewDisposeScope();
        var config = ZooConfigs.For(architecture);
        var model = (nn.Module)ModelFactory.Create(config);

        var breakdown = ParameterCount.Breakdown(config);

        Assert.That(breakdown.Total, Is.EqualTo(ParameterCount.Count(model)));
        Assert.That(breakdown.Embedding + breakdown.Encoder + breakdown.Decoder + breakdown.Other, Is.EqualTo(breakdown.Total));
        Assert.That(breakdown.NonEmbedding, Is.EqualTo(breakdown.Total - breakdown.Embedding));
    }

    [TestCaseSource(nameof(Presets))]
    public void Total_EttinPreset_MatchesThePublishedSizeToATenthOfAMillion(string name)
    {
        var preset = EttinPresets.Get(name);
        var config = preset.Config();
        long v = EttinPreset.Vocabulary, d = preset.Hidden, i = preset.Intermediate, l = preset.Layers;
        var formula = v * d + l * (4 * d * d + 3 * d * i + 2 * d) + (d * d + d) + 2 * d; // SPEC.md section 2

        var total = ParameterCount.Total(config);

        Assert.That(total, Is.EqualTo(formula));
        Assert.That(Math.Round(total / 1e6, 1), Is.EqualTo(preset.PublishedMillions), $"{preset.Name}: {total:N0} parameters");
        Assert.That(ParameterCount.Total(preset.Config(architecture: ModelArchitecture.EttinDecoder)), Is.EqualTo(total), "the decoder twin has the same size");
    }

    [Test]
    public void Count_Ettin17mBuiltForReal_EqualsTheFormula()
    {
        using var scope = NewDisposeScope();
        var preset = EttinPresets.Get("ettin-17m");
        using var model = new EttinEncoder(preset.Config());

        Assert.That(ParameterCount.Count(model), Is.EqualTo(16_863_488));
        Assert.That(model.named_parameters().Where(p => p.name.EndsWith(".bias", StringComparison.Ordinal)), Is.Empty, "no biases anywhere");
    }

    [Test]
    public void Breakdown_EncoderOnlyAndDecoderTwin_PutTheLayersInTheirOwnStack()
    {
        var encoder = ParameterCount.Breakdown(ZooConfigs.For(ModelArchitecture.EncoderOnly));
        var decoder = ParameterCount.Breakdown(ZooConfigs.For(ModelArchitecture.EttinDecoder));

        Assert.That((encoder.Encoder, encoder.Decoder), Is.EqualTo((decoder.Decoder, 0L)));
        Assert.That(encoder.Total, Is.EqualTo(decoder.Total));
    }

    [Test]
    public void Breakdown_PaperGptSizes_CompressedVariantsAreAbout36PercentSmaller()
    {
        // SPEC.md section 3: d 384, 4 blocks, 6 heads, context 256, ~2.1k characters; the paper reports 8.82M vs 5.65M.
        var gpt = new TransformerConfig(VocabSize: 2100, DModel: 384, EncoderLayers: 0, DecoderLayers: 4, Heads: 6, KvHeads: 6,
            HeadDim: 64, FfnDim: 1536, TieEmbeddings: false) { Architecture = ModelArchitecture.Gpt, MaxPositions = 256 };
        var compressed = gpt with { Architecture = ModelArchitecture.LinearlyCompressedGpt };
        var convolutional = gpt with { Architecture = ModelArchitecture.ConvCompressedGpt };

        var baseline = ParameterCount.Total(gpt);
        var small = ParameterCount.Total(compressed);

        Assert.That(baseline / 1e6, Is.EqualTo(8.82).Within(0.02));
        Assert.That(small / 1e6, Is.EqualTo(5.65).Within(0.02));
        Assert.That(1 - (double)small / baseline, Is.EqualTo(0.36).Within(0.01));
        Assert.That(ParameterCount.Total(convolutional), Is.EqualTo(small));
    }

    [Test]
    public void TrainingFlopsPerToken_EttinEncoder_LocalLayersAttendTheirWindowOnly()
    {
        var config = ZooConfigs.For(ModelArchitecture.EncoderOnly) with { LocalWindow = 4 };
        const int length = 16;
        double d = config.DModel, a = config.AttentionDim, f = config.FfnDim, v = config.VocabSize;
        var weights = 6 * (2 * d * a + 2 * d * a + 3 * d * f);
        // Layers 0 and 3 are global (16 keys), 1 and 2 local (5 keys: +-2 and itself).
        var expected = 4 * weights + 12 * a * (16 + 5 + 5 + 16) + 6 * d * d + 6 * v * d;

        Assert.That(ParameterCount.TrainingFlopsPerToken(config, length, 0), Is.EqualTo(expected).Within(1e-9).Percent);
    }

    [Test]
    public void TrainingFlopsPerToken_ParallelGpt_EqualsTheBaselineOfTheSameBlocks()
    {
        // Two branches of L/2 blocks at width d process every token: the same matmuls as L blocks of d.
        var gpt = ZooConfigs.For(ModelArchitecture.Gpt);
        var parallel = ZooConfigs.For(ModelArchitecture.ParallelGpt);

        Assert.That(ParameterCount.TrainingFlopsPerToken(parallel, 0, 16), Is.EqualTo(ParameterCount.TrainingFlopsPerToken(gpt, 0, 16)));
    }

    [Test]
    public void TrainingFlopsPerExample_CausalModelGivenEncoderTokens_ThrowsNamingTheLengths()
    {
        var error = Assert.Throws<ArgumentException>(() => ParameterCount.TrainingFlopsPerExample(ZooConfigs.For(ModelArchitecture.Gpt), 8, 8))!;

        Assert.That(error.Message, Does.Contain("pass encoderLength 0"));
    }
}
