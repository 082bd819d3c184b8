using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Models;
using NUnit.Framework;
using Training.Shared.Training;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

/// <summary>The model keys of the architecture zoo: defaults per family, presets, keys that fit one family, sweeps over arch.</summary>
[TestFixture]
public sealed class ArchitectureSpecTests
{
    private const string File = "/experiments/zoo.yaml";

    private static string Yaml(string model, string objective = "auto", string extra = "") => $"""
        name: zoo
        data:
          train: data/train
        model:
        {Indent(model)}
        objective:
          kind: {objective}
          input_length: 64
        {extra}
        """;

    private static string Indent(string block) => string.Join("\n", block.Split('\n').Select(line => "  " + line));

    private static ExperimentSpec Parse(string yaml) => ExperimentLoader.Parse(yaml, File);

    private static SpecError SingleError(string yaml)
    {
        var error = Assert.Throws<SpecException>(() => Parse(yaml))!;
        Assert.That(error.Errors, Has.Count.EqualTo(1), string.Join("\n", error.Errors));
        return error.Errors[0];
    }

    [Test]
    public void Parse_Gpt_DerivesHeadWidthPositionsAndLayerNormDefaults()
    {
        var spec = Parse(Yaml("arch: gpt\nd_model: 96\nlayers: 4\nheads: 6\nnorm_position: post"));

        var model = spec.Model;
        Assert.That((model.Architecture, model.HeadDim, model.FfnDim, model.MaxPositions), Is.EqualTo((ModelArchitecture.Gpt, 16, 384, 64)));
        Assert.That((model.Layers, model.EncoderLayers, model.DecoderLayers), Is.EqualTo((4, 0, 4)));
        Assert.That((model.NormPosition, model.NormEps, model.Dropout, model.Mlp), Is.EqualTo((NormPosition.Post, 1e-5, 0.1, MlpKind.GeluTanh)));
        Assert.That(spec.Objective.Kind, Is.EqualTo(ObjectiveKind.Clm), "auto gives a causal model clm");
    }

    [Test]
    public void Parse_EttinPreset_FillsTheShapeAndTheRecipeDefaults()
    {
        var spec = Parse(Yaml("arch: encoder-only\npreset: ettin-17m"));

        var model = spec.Model;
        Assert.That((model.DModel, model.Layers, model.EncoderLayers, model.DecoderLayers), Is.EqualTo((256, 7, 7, 0)));
        Assert.That((model.Heads, model.KvHeads, model.HeadDim, model.FfnDim), Is.EqualTo((4, 4, 64, 384)));
        Assert.That((model.Mlp, model.Dropout, model.NormEps), Is.EqualTo((MlpKind.GeGlu, 0.0, 1e-5)));
        Assert.That((model.GlobalEvery, model.LocalWindow, model.RopeTheta, model.GlobalRopeTheta), Is.EqualTo((3, 128, 10000.0, 160000.0)));
        Assert.That(model.Preset, Is.EqualTo("ettin-17m"));
    }

    [Test]
    public void Parse_EttinDecoderPresetWithWrittenKeys_WrittenKeysWinAndTheWindowIs64()
    {
        var spec = Parse(Yaml("arch: ettin-decoder\npreset: ettin-32m\nlayers: 3\ndropout: 0.1", objective: "clm"));

        Assert.That((spec.Model.DModel, spec.Model.Layers, spec.Model.DecoderLayers, spec.Model.Dropout), Is.EqualTo((384, 3, 3, 0.1)));
        Assert.That(spec.Model.LocalWindow, Is.EqualTo(64));
    }

    [TestCase("gpt", "local_window: 32", "model.local_window", "local_window applies to encoder-only and ettin-decoder only, but model.arch is gpt")]
    [TestCase("encoder-decoder", "norm_position: post", "model.norm_position", "norm_position applies to the GPT family")]
    [TestCase("decoder-only", "preset: ettin-17m", "model.preset", "preset applies to encoder-only and ettin-decoder only")]
    [TestCase("parallel-gpt", "compression_stages: 3", "model.compression_stages", "compression_stages applies to lc-gpt and cc-gpt only")]
    [TestCase("encoder-only", "decoder_layers: 2", "model.decoder_layers", "decoder_layers applies to encoder-decoder models only")]
    public void Parse_KeyOfAnotherFamily_ReportsItAtTheKey(string arch, string key, string expectedKey, string message)
    {
        var error = SingleError(Yaml($"arch: {arch}\n{key}"));

        Assert.That(error.Key, Is.EqualTo(expectedKey));
        Assert.That(error.Message, Does.Contain(message));
        Assert.That(error.Line, Is.EqualTo(6));
    }

    [Test]
    public void Parse_NormPositionPreOnAnotherFamily_IsAccepted()
    {
        Assert.That(Parse(Yaml("arch: encoder-decoder\nnorm_position: pre")).Model.NormPosition, Is.EqualTo(NormPosition.Pre));
    }

    [TestCase("arch: lc-gpt\nd_model: 40\nheads: 4", "model.d_model", "divisible by heads * 2^compression_stages = 16")]
    [TestCase("arch: parallel-gpt\nlayers: 3", "model.layers", "layers (3) must be even")]
    [TestCase("arch: gpt\nd_model: 64\nheads: 4\nhead_dim: 32", "model.head_dim", "heads (4) * head_dim (32) must equal d_model (64)")]
    [TestCase("arch: cc-gpt\nd_model: 64\nheads: 2\nlayers: 3", "model.layers", "multiple of compression_stages (2)")]
    [TestCase("arch: gpt\nmax_positions: 32", "model.max_positions", "max_positions (32) must be >= objective.input_length (64)")]
    public void Parse_GptShapeThatCannotBeBuilt_ReportsTheKeyAndWhy(string model, string key, string message)
    {
        var error = SingleError(Yaml(model));

        Assert.That(error.Key, Is.EqualTo(key));
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void Parse_ClmOnEncoderOnly_ListsTheCausalArchitectures()
    {
        var error = SingleError(Yaml("arch: encoder-only", objective: "clm"));

        Assert.That(error.Key, Is.EqualTo("objective.kind"));
        Assert.That(error.Message, Does.Contain("clm requires model.arch decoder-only, gpt, parallel-gpt, lc-gpt, cc-gpt or ettin-decoder, but model.arch is encoder-only"));
    }

    [Test]
    public void Expand_SweepOverArchWithAutoObjective_EachTrialGetsItsObjectiveAndItsKeys()
    {
        var spec = Parse(Yaml("arch: encoder-decoder\nlayers: 6\nencoder_fraction: 0.5\nlocal_window: 16\nnorm_position: post",
            extra: "sweep:\n  grid:\n    model.arch: [encoder-decoder, decoder-only, gpt, encoder-only]"));

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials.Select(t => t.Spec.Objective.Kind), Is.EqualTo(new[]
            { ObjectiveKind.SpanCorruption, ObjectiveKind.Clm, ObjectiveKind.Clm, ObjectiveKind.Mlm }));
        Assert.That(trials.Select(t => (t.Spec.Model.EncoderLayers, t.Spec.Model.DecoderLayers)), Is.EqualTo(new[] { (3, 3), (0, 6), (0, 6), (6, 0) }));
        Assert.That(trials.Select(t => t.Spec.Model.NormPosition), Is.EqualTo(new[] { NormPosition.Pre, NormPosition.Pre, NormPosition.Post, NormPosition.Pre }));
        Assert.That(trials.Select(t => t.Spec.Model.LocalWindow), Is.EqualTo(new[] { 128, 128, 128, 16 }));
    }

    [TestCase("arch: gpt\nd_model: 64\nheads: 4\nnorm_position: post\nmax_positions: 80")]
    [TestCase("arch: parallel-gpt\nd_model: 32\nheads: 2\nlayers: 2\nbranches_at_inference: stronger")]
    [TestCase("arch: lc-gpt\nd_model: 64\nheads: 2\nlayers: 6\ncompression_stages: 3")]
    [TestCase("arch: cc-gpt\nd_model: 64\nheads: 2")]
    [TestCase("arch: ettin-decoder\npreset: ettin-68m\nglobal_every: 2\nlocal_window: 32\nglobal_rope_theta: 80000")]
    [TestCase("arch: ettin-decoder\nd_model: 64\nheads: 1\nlayers: 4")]
    [TestCase("arch: encoder-only\npreset: ettin-150m\nlayers: 2\nlocal_window: 16")]
    public void ToYaml_EveryArchitecture_ParsesBackToAnEqualSpec(string model)
    {
        var spec = Parse(Yaml(model));

        var reread = Parse(SpecWriter.ToYaml(spec));

        Assert.That(reread with { SourceFile = spec.SourceFile }, Is.EqualTo(spec));
        Assert.That(reread.Model, Is.EqualTo(spec.Model));
    }

    [Test]
    public void Parse_EncoderOnlyWithAuto_TrainsMlmAtTheGivenRates()
    {
        var spec = Parse(Yaml("arch: encoder-only", extra: "optimizer:\n  kind: stable-adamw").Replace("input_length: 64", "input_length: 64\n  mask_rate: 0.4\n  eval_mask_rate: 0.2"));

        Assert.That((spec.Objective.Kind, spec.Objective.MaskRate, spec.Objective.EvalMaskRate), Is.EqualTo((ObjectiveKind.Mlm, 0.4, 0.2)));
        Assert.That(spec.Optimizer.Kind, Is.EqualTo(OptimizerKind.StableAdamW));
    }

    [Test]
    public void Parse_MlmWithoutSentinels_ReportsAtSentinels()
    {
        var error = SingleError(Yaml("arch: encoder-only", objective: "mlm", extra: "tokenizer:\n  sentinels: 0"));

        Assert.That(error.Key, Is.EqualTo("tokenizer.sentinels"));
        Assert.That(error.Message, Does.Contain("mask id"));
    }
}
