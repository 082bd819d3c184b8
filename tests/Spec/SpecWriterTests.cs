using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Models;
using NUnit.Framework;
using Training.Shared.Training;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

[TestFixture]
public sealed class SpecWriterTests
{
    private SpecFixture fixture = null!;

    [SetUp]
    public void SetUp() => fixture = new SpecFixture();

    [TearDown]
    public void TearDown() => fixture.Dispose();

    [Test]
    public void ToYaml_FullSpec_ParsesBackToAnEqualSpec()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.FullYaml));

        var reread = ExperimentLoader.Parse(SpecWriter.ToYaml(spec), spec.SourceFile);

        AssertEqualSpecs(reread, spec);
    }

    [Test]
    public void ToYaml_MinimalSpec_WritesEveryResolvedValue()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml));

        var yaml = SpecWriter.ToYaml(spec);

        Assert.That(yaml, Does.Contain("  ffn_dim: 1024\n").And.Contain("  encoder_layers: 4\n").And.Contain("  micro_batch: 16\n")
            .And.Contain("  norm_eps: 1.0e-06\n").And.Contain($"    - \"{fixture.PathOf("data/train")}\"\n"));
        AssertEqualSpecs(ExperimentLoader.Parse(yaml, spec.SourceFile), spec);
    }

    [Test]
    public void ToYaml_EveryTrialOfASweep_RoundTrips()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.FullYaml + """

            sweep:
              grid:
                objective.noise_density: [0.1, 0.3]
                resources.device: [cpu, "cuda:0"]
              random:
                samples: 3
                params:
                  optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}
                  model.dropout: {uniform: [0.0, 0.3]}
            """));

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials, Has.Count.EqualTo(12));
        foreach (var trial in trials)
            AssertEqualSpecs(ExperimentLoader.Parse(SpecWriter.ToYaml(trial.Spec), spec.SourceFile), trial.Spec);
    }

    [Test]
    public void ToYaml_LayersWithEncoderFraction_KeepsTheFraction()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml.Replace(
            "arch: encoder-decoder", "arch: encoder-decoder\n  layers: 9\n  encoder_fraction: 0.667") + "\nsweep:\n  grid:\n    model.layers: [3, 12]\n"));

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials.Select(t => (t.Spec.Model.EncoderLayers, t.Spec.Model.DecoderLayers)), Is.EqualTo(new[] { (2, 1), (8, 4) }));
        foreach (var trial in trials)
        {
            var reread = ExperimentLoader.Parse(SpecWriter.ToYaml(trial.Spec), spec.SourceFile);
            AssertEqualSpecs(reread, trial.Spec);
            Assert.That(reread.Model.EncoderFraction, Is.EqualTo(0.667));
        }
    }

    [Test]
    public void ToYaml_SpecWithSweep_RoundTripsAndExpandsToTheSameTrials()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml + """

            seed: 5
            sweep:
              grid:
                model.d_model: [64, 128]
                model.mlp: [gelu, swiglu]
              random:
                samples: 2
                params:
                  optimizer.lr: {log_uniform: [1.0e-4, 1.0e-3]}
                  model.heads: {int_uniform: [1, 4]}
                  schedule.kind: {choice: [cosine, wsd]}
            """));

        var yaml = SpecWriter.ToYaml(spec);
        var reread = ExperimentLoader.Parse(yaml, spec.SourceFile);

        AssertEqualSpecs(reread, spec);
        Assert.That(yaml, Does.Not.Contain("ffn_dim"), "defaulted keys stay unwritten so trials re-derive them");
        var expected = TrialComponents.Expand(spec);
        var actual = TrialComponents.Expand(reread);
        Assert.That(actual.Select(t => t.Overrides), Is.EqualTo(expected.Select(t => t.Overrides)));
        Assert.That(actual.Select(t => t.Spec), Is.EqualTo(expected.Select(t => t.Spec)));
        Assert.That(actual.Select(t => t.Spec.Model.FfnDim), Is.EqualTo(actual.Select(t => 4 * t.Spec.Model.DModel)));
    }

    [Test]
    public void ToYaml_SpecChangedInCode_WritesTheChange()
    {
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml + "\nsweep:\n  grid:\n    optimizer.lr: [1.0e-3]\n"));
        var changed = spec with { Model = spec.Model with { DModel = 512, FfnDim = 640 }, Resources = spec.Resources with { Device = "cuda:3" } };

        var reread = ExperimentLoader.Parse(SpecWriter.ToYaml(changed), spec.SourceFile);

        AssertEqualSpecs(reread, changed);
        Assert.That((reread.Model.DModel, reread.Model.FfnDim, reread.Resources.Device), Is.EqualTo((512, 640, "cuda:3")));
    }

    [Test]
    public void ToYaml_OddNameAndPaths_AreQuotedSafely()
    {
        fixture.CreateFile("data dir/it's \"here\".parquet");
        var spec = ExperimentLoader.Load(fixture.WriteYaml(SpecFixture.MinimalYaml
            .Replace("name: mini", "name: 1-null")
            .Replace("train: data/train", "train: ['data dir/it''s \"here\".parquet']")));

        var reread = ExperimentLoader.Parse(SpecWriter.ToYaml(spec), spec.SourceFile);

        Assert.That(reread.Name, Is.EqualTo("1-null"));
        Assert.That(reread.Data.Train, Is.EqualTo(new[] { fixture.PathOf("data dir/it's \"here\".parquet") }));
    }

    /// <summary>Records compare lists by reference unless they hold SpecLists; check both the record and each list.</summary>
    private static void AssertEqualSpecs(ExperimentSpec actual, ExperimentSpec expected)
    {
        Assert.That(actual.Data.Train, Is.EqualTo(expected.Data.Train).AsCollection);
        Assert.That(actual.Data.Eval, Is.EqualTo(expected.Data.Eval).AsCollection);
        Assert.That(actual.Model, Is.EqualTo(expected.Model));
        Assert.That(actual.Optimizer, Is.EqualTo(expected.Optimizer));
        Assert.That(actual.Sweep?.Grid.Select(a => (a.Key, string.Join(",", a.Values.Select(v => v.Text)))),
            Is.EqualTo(expected.Sweep?.Grid.Select(a => (a.Key, string.Join(",", a.Values.Select(v => v.Text))))));
        Assert.That(actual.Sweep?.Random?.Params.Select(p => (p.Key, p.Distribution, p.Low, p.High, p.Choices.Count)),
            Is.EqualTo(expected.Sweep?.Random?.Params.Select(p => (p.Key, p.Distribution, p.Low, p.High, p.Choices.Count))));
        Assert.That(actual, Is.EqualTo(expected));
    }
}
