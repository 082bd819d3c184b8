using Training.Shared.Data;
using Training.Shared.Objectives;
using NUnit.Framework;
using Training.Shared.Training;
using Training.Shared.Models;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

/// <summary>sweep.equal_flops: variants sized to the reference's training FLOPs per token.</summary>
[TestFixture]
public sealed class EqualFlopsSweepTests
{
    private const string File = "/experiments/equal.yaml";

    private static string Yaml(string sweep, string model = "arch: encoder-decoder\n  d_model: 96\n  layers: 6\n  encoder_fraction: 0.6667") => $"""
        name: equal
        data:
          train: data/train
        model:
          {model}
          heads: 4
          kv_heads: 2
          head_dim: 24
        objective:
          kind: auto
          input_length: 64
        sweep:
        {sweep}
        """;

    private const string Splits = """
          equal_flops:
            size_by: model.layers
            variants:
              - {model.encoder_fraction: 0.3333}
              - {model.encoder_fraction: 0.5}
              - {model.arch: decoder-only}
        """;

    private static IReadOnlyList<Trial> Expand(string yaml) => TrialComponents.Expand(ExperimentLoader.Parse(yaml, File));

    private static double Flops(ExperimentSpec spec) => TrainingBudget.For(spec).FlopsPerToken;

    private static IReadOnlyList<SpecError> Errors(string yaml)
    {
        var error = Assert.Throws<SpecException>(() => Expand(yaml))!;
        return error.Errors;
    }

    [Test]
    public void Expand_SplitsAndDecoderOnly_ReferenceFirstThenEachVariantAtTheClosestLayerCount()
    {
        var trials = Expand(Yaml(Splits));

        Assert.That(trials.Select(t => t.Id), Is.EqualTo(new[] { "equal-t000", "equal-t001", "equal-t002", "equal-t003" }));
        var reference = trials[0];
        Assert.That((reference.Spec.Model.EncoderLayers, reference.Spec.Model.DecoderLayers), Is.EqualTo((4, 2)));
        Assert.That(reference.FlopsReference, Is.EqualTo(reference.Spec));
        var target = Flops(reference.Spec);
        foreach (var variant in trials.Skip(1))
        {
            Assert.That(variant.FlopsReference, Is.EqualTo(reference.Spec));
            var chosen = variant.Spec.Model.Layers;
            var distance = Math.Abs(Math.Log(Flops(variant.Spec) / target));
            foreach (var neighbour in new[] { chosen - 1, chosen + 1 })
            {
                var other = TrialComponents.Expand(ExperimentLoader.Parse(SpecWriter.ToYaml(variant.Spec with { Model = variant.Spec.Model with
                {
                    EncoderLayers = variant.Spec.Model.Architecture == ModelArchitecture.DecoderOnly ? 0 : (int)Math.Round(neighbour * variant.Spec.Model.EncoderFraction!.Value, MidpointRounding.AwayFromZero),
                    DecoderLayers = variant.Spec.Model.Architecture == ModelArchitecture.DecoderOnly ? neighbour : neighbour - (int)Math.Round(neighbour * variant.Spec.Model.EncoderFraction!.Value, MidpointRounding.AwayFromZero),
                } }), File))[0].Spec;
                Assert.That(Math.Abs(Math.Log(Flops(other) / target)), Is.GreaterThanOrEqualTo(distance), $"{variant.Id}: {neighbour} layers would be closer than {chosen}");
            }
            Assert.That(Flops(variant.Spec) / target, Is.EqualTo(1.0).Within(0.15), variant.Id);
        }
        Assert.That(trials.Select(t => t.Spec.Objective.Kind).Last(), Is.EqualTo(ObjectiveKind.Clm), "objective auto follows the variant's arch");
    }

    [Test]
    public void Expand_Comparison_EveryTrialShowsTheComparedKeysSideBySide()
    {
        var trials = Expand(Yaml(Splits));

        Assert.That(trials[0].Overrides, Is.EqualTo(new Dictionary<string, string>
            { ["model.encoder_fraction"] = "0.6667", ["model.arch"] = "encoder-decoder", ["model.layers"] = "6" }));
        Assert.That(trials[1].Overrides["model.encoder_fraction"], Is.EqualTo("0.3333"));
        Assert.That(trials[1].Overrides["model.layers"], Is.EqualTo(trials[1].Spec.Model.Layers.ToString()));
        Assert.That(trials[3].Overrides.ContainsKey("model.encoder_fraction"), Is.False, "a decoder-only model has no split");
        Assert.That(trials[3].Overrides["model.arch"], Is.EqualTo("decoder-only"));
    }

    [Test]
    public void Expand_SizedByDModel_LandsWithinTenPercent()
    {
        var trials = Expand(Yaml(Splits.Replace("size_by: model.layers", "size_by: model.d_model")));

        var target = Flops(trials[0].Spec);
        // d_model moves in steps of 8: near 96 a step changes the FLOPs by up to ~17%, so the best lands within half that.
        Assert.That(trials.Skip(1).Select(t => Flops(t.Spec) / target), Has.All.EqualTo(1.0).Within(0.1));
        Assert.That(trials.Skip(1).Select(t => t.Spec.Model.DModel % 8), Has.All.Zero);
        Assert.That(trials.Skip(1).Select(t => t.Spec.Model.Layers), Has.All.EqualTo(6), "layers stay as written");
    }

    [Test]
    public void Expand_CrossedWithAGrid_SizesEachGroupAgainstItsOwnReference()
    {
        var trials = Expand(Yaml(Splits + "\n  grid:\n    model.d_model: [64, 128]"));

        Assert.That(trials, Has.Count.EqualTo(8));
        Assert.That(trials.Take(4).Select(t => t.FlopsReference!.Model.DModel), Has.All.EqualTo(64));
        Assert.That(trials.Skip(4).Select(t => t.FlopsReference!.Model.DModel), Has.All.EqualTo(128));
        Assert.That(trials[4].Overrides["model.d_model"], Is.EqualTo("128"));
    }

    [Test]
    public void Expand_ReferenceSettings_ApplyToTheReferenceAndEveryVariant()
    {
        var trials = Expand(Yaml("""
              equal_flops:
                reference: {model.arch: decoder-only}
                variants:
                  - {model.arch: encoder-decoder, model.encoder_fraction: 0.5}
            """, model: "arch: encoder-decoder\n  d_model: 96\n  layers: 6"));

        Assert.That(trials[0].Spec.Model.Architecture, Is.EqualTo(ModelArchitecture.DecoderOnly));
        Assert.That(trials[1].Spec.Model.Architecture, Is.EqualTo(ModelArchitecture.EncoderDecoder));
        Assert.That(trials[1].Spec.Model.EncoderLayers, Is.EqualTo((int)Math.Round(trials[1].Spec.Model.Layers * 0.5, MidpointRounding.AwayFromZero)));
    }

    [Test]
    public void ToYaml_ComparisonSpec_ReExpandsToTheSameTrials()
    {
        var spec = ExperimentLoader.Parse(Yaml(Splits), File);

        var reread = ExperimentLoader.Parse(SpecWriter.ToYaml(spec), File);

        Assert.That(reread.Sweep, Is.EqualTo(spec.Sweep));
        Assert.That(TrialComponents.Expand(reread).Select(t => t.Spec), Is.EqualTo(TrialComponents.Expand(spec).Select(t => t.Spec)));
    }

    [TestCase("  equal_flops:\n    variants:\n      - {model.layers: 4}", "sweep.equal_flops.variants[0].model.layers", "is what equal_flops chooses")]
    [TestCase("  equal_flops:\n    size_by: model.heads\n    variants:\n      - {model.arch: decoder-only}", "sweep.equal_flops.size_by", "expected one of: model.layers, model.d_model")]
    [TestCase("  equal_flops:\n    size_by: model.layers", "sweep.equal_flops.variants", "required key is missing")]
    [TestCase("  equal_flops:\n    variants:\n      - {model.archh: decoder-only}", "sweep.equal_flops.variants[0].model.archh", "unknown sweep key")]
    [TestCase("  equal_flops:\n    variants:\n      - {model.arch: decoder}", "sweep.equal_flops.variants[0].model.arch", "unknown value \"decoder\"")]
    [TestCase("  equal_flops:\n    variants: []", "sweep.equal_flops.variants", "non-empty list")]
    [TestCase("  grid:\n    model.arch: [gpt]\n  equal_flops:\n    variants:\n      - {model.arch: decoder-only}", "sweep.equal_flops", "vary a key in one place only")]
    public void Parse_BadComparison_ReportsTheEntry(string sweep, string key, string message)
    {
        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(Yaml(sweep), File))!;

        Assert.That(error.Errors.Select(e => e.Key), Does.Contain(key), string.Join("\n", error.Errors));
        Assert.That(error.Errors.First(e => e.Key == key).Message, Does.Contain(message));
    }

    [Test]
    public void Expand_VariantNoSizeCanBuild_ReportsAtTheVariantWithAnExample()
    {
        var errors = Errors(Yaml("  equal_flops:\n    variants:\n      - {model.kv_heads: 3}"));

        var error = errors.Single();
        Assert.That(error.Key, Is.EqualTo("sweep.equal_flops.variants[0]"));
        Assert.That(error.Message, Does.Contain("no value of model.layers gives a valid model").And.Contain("kv_heads (3) must divide heads (4)"));
        Assert.That(error.Line, Is.EqualTo(18));
    }
}
