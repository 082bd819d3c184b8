using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Models;
using NUnit.Framework;
using System.Globalization;
using Training.Shared.Training;
using Training.Shared.Spec;

namespace Training.Tests.Spec;

[TestFixture]
public sealed class SweepExpanderTests
{
    private const string FilePath = "/experiments/sweep.yaml";

    [Test]
    public void Expand_NoSweep_GivesOneTrialWithTheSpec()
    {
        var spec = Parse(SpecFixture.MinimalYaml);

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials, Has.Count.EqualTo(1));
        Assert.That((trials[0].Id, trials[0].Index, trials[0].Overrides.Count), Is.EqualTo(("mini-t000", 0, 0)));
        Assert.That(trials[0].Spec, Is.EqualTo(spec));
    }

    [Test]
    public void Expand_Grid_IsTheCartesianProductInYamlOrder()
    {
        var spec = Parse(SpecFixture.MinimalYaml + """

            sweep:
              grid:
                model.d_model: [128, 256]
                optimizer.lr: [1.0e-3, 3.0e-4, 1.0e-4]
            """);

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials.Select(t => t.Id), Is.EqualTo(Enumerable.Range(0, 6).Select(i => $"mini-t{i:000}")));
        Assert.That(trials.Select(t => t.Index), Is.EqualTo(Enumerable.Range(0, 6)));
        Assert.That(trials.Select(t => (t.Spec.Model.DModel, t.Spec.Optimizer.Lr)), Is.EqualTo(new[]
        {
            (128, 1e-3), (128, 3e-4), (128, 1e-4), (256, 1e-3), (256, 3e-4), (256, 1e-4),
        }));
        Assert.That(trials[4].Overrides, Is.EqualTo(new Dictionary<string, string>
        {
            ["model.d_model"] = "256", ["optimizer.lr"] = "3.0e-4",
        }));
    }

    [Test]
    public void Expand_TrialSpecs_HaveNoSweepAndTheExperimentSeed()
    {
        var spec = Parse(SpecFixture.MinimalYaml + "\nseed: 77\nsweep:\n  grid:\n    model.mlp: [gelu, swiglu]\n");

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials.Select(t => t.Spec.Sweep), Is.All.Null);
        Assert.That(trials.Select(t => t.Spec.Seed), Is.All.EqualTo(77L));
        Assert.That(trials.Select(t => t.Spec.Model.Mlp), Is.EqualTo(new[] { MlpKind.GeluTanh, MlpKind.SwiGlu }));
        Assert.That(trials[1].Spec, Is.EqualTo(spec with { Sweep = null, Model = spec.Model with { Mlp = MlpKind.SwiGlu } }));
    }

    [Test]
    public void Expand_SweptKey_RederivesDefaultsThatFollowIt()
    {
        // ffn_dim defaults to 4 * d_model, kv_heads to heads, the split to 2/3 of layers.
        var spec = Parse(SpecFixture.MinimalYaml + """

            sweep:
              grid:
                model.d_model: [64, 128]
                model.heads: [2, 8]
                model.layers: [3, 9]
            """);

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials, Has.Count.EqualTo(8));
        Assert.That(trials.Select(t => t.Spec.Model.FfnDim), Is.EqualTo(trials.Select(t => 4 * t.Spec.Model.DModel)));
        Assert.That(trials.Select(t => t.Spec.Model.KvHeads), Is.EqualTo(trials.Select(t => t.Spec.Model.Heads)));
        Assert.That(trials.Select(t => (t.Spec.Model.EncoderLayers, t.Spec.Model.DecoderLayers)).Distinct(),
            Is.EquivalentTo(new[] { (2, 1), (6, 3) }));
    }

    [Test]
    public void Expand_RandomCrossedWithGrid_GivesEveryGridPointTheSameDraws()
    {
        var spec = Parse(SpecFixture.MinimalYaml + RandomSweep(samples: 4, withGrid: true));

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials, Has.Count.EqualTo(2 * 4));
        var firstPoint = trials.Take(4).Select(t => t.Overrides.Where(o => o.Key != "model.d_model").ToList()).ToList();
        var secondPoint = trials.Skip(4).Select(t => t.Overrides.Where(o => o.Key != "model.d_model").ToList()).ToList();
        Assert.That(secondPoint, Is.EqualTo(firstPoint));
        Assert.That(trials.Select(t => t.Spec.Model.DModel), Is.EqualTo(new[] { 128, 128, 128, 128, 256, 256, 256, 256 }));
        Assert.That(trials[0].Overrides.Keys, Is.EqualTo(new[]
        {
            "model.d_model", "optimizer.lr", "model.dropout", "model.mlp", "model.heads",
        }));
    }

    [Test]
    public void Expand_RandomDraws_StayWithinTheirDistributionsAndAreApplied()
    {
        var spec = Parse(SpecFixture.MinimalYaml + RandomSweep(samples: 40, withGrid: false));

        var trials = TrialComponents.Expand(spec);

        Assert.That(trials, Has.Count.EqualTo(40));
        foreach (var trial in trials)
        {
            Assert.That(trial.Spec.Optimizer.Lr, Is.InRange(1e-4, 1e-3));
            Assert.That(trial.Spec.Model.Dropout, Is.InRange(0.0, 0.2));
            Assert.That(trial.Spec.Model.Heads, Is.InRange(2, 4));
            Assert.That(trial.Spec.Optimizer.Lr, Is.EqualTo(double.Parse(trial.Overrides["optimizer.lr"], CultureInfo.InvariantCulture)));
            Assert.That(trial.Spec.Model.Heads.ToString(CultureInfo.InvariantCulture), Is.EqualTo(trial.Overrides["model.heads"]));
            Assert.That(trial.Overrides["model.mlp"], Is.AnyOf("gelu", "swiglu"));
        }
        // Forty draws cover every choice and integer, and put log-uniform values on both sides of the geometric middle.
        Assert.That(trials.Select(t => t.Spec.Model.Mlp).Distinct().Count(), Is.EqualTo(2));
        Assert.That(trials.Select(t => t.Spec.Model.Heads).Distinct().Order(), Is.EqualTo(new[] { 2, 3, 4 }));
        Assert.That(trials.Count(t => t.Spec.Optimizer.Lr < 3.162e-4), Is.InRange(8, 32));
    }

    [Test]
    public void Expand_SameSeed_GivesTheSameTrials_OtherSeed_Different()
    {
        var yaml = SpecFixture.MinimalYaml + RandomSweep(samples: 5, withGrid: false);

        var first = TrialComponents.Expand(Parse(yaml)).Select(t => t.Overrides).ToList();
        var again = TrialComponents.Expand(Parse(yaml)).Select(t => t.Overrides).ToList();
        var otherSeed = TrialComponents.Expand(Parse(yaml + "\nseed: 99\n")).Select(t => t.Overrides).ToList();

        Assert.That(again, Is.EqualTo(first));
        Assert.That(otherSeed.Select(o => o["optimizer.lr"]), Is.Not.EqualTo(first.Select(o => o["optimizer.lr"])));
    }

    [Test]
    public void Expand_BadCombination_IsReportedAtTheSweepValue()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
              heads: 4
            objective:
              kind: span-corruption
            sweep:
              grid:
                model.kv_heads: [2, 3]
            """;
        var spec = Parse(yaml);

        var error = Assert.Throws<SpecException>(() => TrialComponents.Expand(spec))!.Errors.Single();

        Assert.That((error.File, error.Line, error.Column, error.Key), Is.EqualTo((FilePath, 11, 25, "model.kv_heads")));
        Assert.That(error.Message, Does.Contain("kv_heads (3) must divide heads (4)").And.Contain("trial mini-t001"));
    }

    [Test]
    public void Expand_SweptKeyBreakingAFixedKey_IsReportedAtTheSweep()
    {
        // heads is swept, kv_heads fixed in the file: the error points at the sweep line that made it wrong.
        var yaml = SpecFixture.MinimalYaml.Replace("arch: encoder-decoder", "arch: encoder-decoder\n  kv_heads: 2")
                   + "\nsweep:\n  grid:\n    model.heads: [4, 6, 3]\n";
        var spec = Parse(yaml);

        var error = Assert.Throws<SpecException>(() => TrialComponents.Expand(spec))!.Errors.Single();

        Assert.That((error.Line, error.Key), Is.EqualTo((11, "model.heads")));
        Assert.That(error.Message, Does.Contain("kv_heads (2) must divide heads (3)").And.Contain("mini-t002"));
    }

    [Test]
    public void Expand_RandomDrawOutOfRange_IsReportedAtTheParamLine()
    {
        const string yaml = """
            name: mini
            data:
              train: data/train
            model:
              arch: encoder-decoder
            objective:
              kind: span-corruption
            sweep:
              random:
                samples: 8
                params:
                  model.dropout: {uniform: [0.5, 1.5]}
            """;
        var spec = Parse(yaml);

        var errors = Assert.Throws<SpecException>(() => TrialComponents.Expand(spec))!.Errors;

        Assert.That(errors, Is.Not.Empty);
        Assert.That(errors.Select(e => (e.Line, e.Column, e.Key)), Is.All.EqualTo((12, 7, "model.dropout")));
        Assert.That(errors.Select(e => e.Message), Is.All.Contain("is out of range: expected a number in [0, 1)"));
    }

    [Test]
    public void Expand_SpecChangedInCode_AppliesOverridesToTheChangedValues()
    {
        var spec = Parse(SpecFixture.MinimalYaml + "\nsweep:\n  grid:\n    optimizer.lr: [1.0e-3, 1.0e-4]\n");
        var changed = spec with { Train = spec.Train with { Steps = 42 } };

        var trials = TrialComponents.Expand(changed);

        Assert.That(trials.Select(t => t.Spec.Train.Steps), Is.All.EqualTo(42));
        Assert.That(trials.Select(t => t.Spec.Optimizer.Lr), Is.EqualTo(new[] { 1e-3, 1e-4 }));
    }

    private static ExperimentSpec Parse(string yaml) => ExperimentLoader.Parse(yaml, FilePath);

    private static string RandomSweep(int samples, bool withGrid) => $"""

        sweep:
        {(withGrid ? "  grid:\n    model.d_model: [128, 256]" : "")}
          random:
            samples: {samples}
            params:
              optimizer.lr: {"{"}log_uniform: [1.0e-4, 1.0e-3]{"}"}
              model.dropout: {"{"}uniform: [0.0, 0.2]{"}"}
              model.mlp: {"{"}choice: [gelu, swiglu]{"}"}
              model.heads: {"{"}int_uniform: [2, 4]{"}"}
        """;
}
