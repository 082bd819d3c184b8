using NUnit.Framework;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Training;

namespace Training.Tests.Spec;

/// <summary><c>stages:</c>: parsing, the stage graph's errors (with file, line and key), and expansion into stage trials.</summary>
[TestFixture]
public sealed class StageSpecTests
{
    private const string FilePath = "/experiments/pipeline.yaml";

    /// <summary>The file's defaults (an encoder-only MLM model with eval data) under every stage.</summary>
    private const string Defaults = """
        name: pipe
        seed: 9
        data:
          train: data/train
          eval: data/eval
        model:
          arch: encoder-only
          d_model: 64
          layers: 3
          heads: 2
        objective:
          kind: auto
        train:
          steps: 10
        """;

    private static ExperimentSpec Parse(string stages) => ExperimentLoader.Parse(Defaults + "\n" + stages, FilePath);

    private static SpecError SingleError(string stages)
    {
        var error = Assert.Throws<SpecException>(() => TrialComponents.Expand(Parse(stages)))!;
        Assert.That(error.Errors, Has.Count.EqualTo(1), error.Message);
        return error.Errors[0];
    }

    /// <summary>1-based line of the first line containing <paramref name="text"/> in Defaults + stages.</summary>
    private static int LineOf(string stages, string text) =>
        Array.FindIndex((Defaults + "\n" + stages).Split('\n'), l => l.Contains(text, StringComparison.Ordinal)) + 1;

    private const string TwoStages = """
        stages:
          pretrain:
            sweep:
              grid:
                optimizer.lr: [1.0e-3, 3.0e-3]
          continue:
            after: pretrain
            model:
              arch: ettin-decoder
              init_from: {stage: pretrain, pick: best-eval}
            train:
              steps: 20
        """;

    [Test]
    public void Expand_TwoStages_GivesEachStagesTrialsInRunOrderOverTheFilesDefaults()
    {
        var spec = Parse(TwoStages);

        var trials = TrialComponents.Expand(spec);

        Assert.That(spec.Stages!.Stages.Select(s => (s.Name, string.Join(",", s.After))), Is.EqualTo(new[] { ("pretrain", ""), ("continue", "pretrain") }));
        Assert.That(trials.Select(t => (t.Id, t.Index, t.Stage)), Is.EqualTo(new[]
        {
            ("pipe-pretrain-t000", 0, "pretrain"), ("pipe-pretrain-t001", 1, "pretrain"), ("pipe-continue-t000", 2, "continue"),
        }));
        Assert.That(trials.Select(t => t.Spec.Optimizer.Lr), Is.EqualTo(new[] { 1e-3, 3e-3, 3e-4 }), "the sweep is the first stage's only");
        Assert.That(trials.Select(t => (t.Spec.Model.Architecture, t.Spec.Objective.Kind, t.Spec.Train.Steps)), Is.EqualTo(new[]
        {
            (ModelArchitecture.EncoderOnly, ObjectiveKind.Mlm, 10), (ModelArchitecture.EncoderOnly, ObjectiveKind.Mlm, 10),
            (ModelArchitecture.EttinDecoder, ObjectiveKind.Clm, 20),
        }));
        Assert.That(trials.Select(t => t.Spec.Model.DModel), Is.All.EqualTo(64), "stages keep the file's keys they do not set");
        Assert.That(trials[2].InitFromStage, Is.EqualTo(new StageReference("pretrain", StagePick.BestEval)));
        Assert.That(trials.Take(2).Select(t => t.InitFromStage), Is.All.Null);
        Assert.That(trials.Select(t => t.Spec.Model.InitFrom), Is.All.Null, "picked when the stage has completed, not before");
    }

    [Test]
    public void Expand_StageTrialSpec_WritesBackToAPlainSpecThatParsesToTheSame()
    {
        var trial = TrialComponents.Expand(Parse(TwoStages))[2];

        var yaml = SpecWriter.ToYaml(trial.Spec);

        Assert.That(ExperimentLoader.Parse(yaml, FilePath), Is.EqualTo(trial.Spec));
        Assert.That(yaml, Does.Not.Contain("stage"));
    }

    [Test]
    public void Parse_StagesListedBeforeTheirDependencies_RunInDependencyOrder()
    {
        var spec = Parse("""
            stages:
              finetune:
                after: [middle]
              middle:
                after: first
              first:
              side:
            """);

        Assert.That(spec.Stages!.Stages.Select(s => s.Name), Is.EqualTo(new[] { "first", "middle", "finetune", "side" }));
        Assert.That(spec.Stages.Upstream("finetune"), Is.EquivalentTo(new[] { "middle", "first" }));
    }

    [Test]
    public void Parse_Pick_AcceptsLastAndAnIndex()
    {
        var spec = Parse(TwoStages.Replace("pick: best-eval", "pick: 1"));
        var last = Parse(TwoStages.Replace("pick: best-eval", "pick: last"));
        var byDefault = Parse(TwoStages.Replace(", pick: best-eval", ""));

        Assert.That(TrialComponents.Expand(spec)[2].InitFromStage!.Pick, Is.EqualTo(new StagePick(StagePickKind.Index, 1)));
        Assert.That(TrialComponents.Expand(last)[2].InitFromStage!.Pick.Kind, Is.EqualTo(StagePickKind.Last));
        Assert.That(TrialComponents.Expand(byDefault)[2].InitFromStage!.Pick, Is.EqualTo(StagePick.BestEval));
    }

    [Test]
    public void Parse_Cycle_IsAnErrorAtTheAfterEntryThatClosesIt()
    {
        const string stages = """
            stages:
              a:
                after: c
              b:
                after: a
              c:
                after: [b]
            """;

        var error = SingleError(stages);

        Assert.That(error.Key, Is.EqualTo("stages.c.after[0]"));
        Assert.That((error.File, error.Line), Is.EqualTo((FilePath, LineOf(stages, "after: [b]"))));
        Assert.That(error.Message, Does.Contain("cycle").And.Contain("a -> b -> c -> a"));
    }

    [Test]
    public void Parse_StageAfterItself_IsACycle()
    {
        var error = SingleError("stages:\n  a:\n    after: a\n");

        Assert.That(error.Message, Does.Contain("a -> a"));
    }

    [Test]
    public void Parse_UnknownAfterName_NamesTheStagesThatExist()
    {
        const string stages = """
            stages:
              pretrain:
              continue:
                after: [pretrian]
            """;

        var error = SingleError(stages);

        Assert.That((error.Key, error.Line, error.Column), Is.EqualTo(("stages.continue.after[0]", LineOf(stages, "pretrian"), 13)));
        Assert.That(error.Message, Does.Contain("unknown stage \"pretrian\"").And.Contain("did you mean \"pretrain\"").And.Contain("pretrain, continue"));
    }

    [Test]
    public void Parse_InitFromAStageNotRunBefore_SaysToAddItToAfter()
    {
        const string stages = """
            stages:
              pretrain:
              other:
              continue:
                after: other
                model:
                  init_from: {stage: pretrain}
            """;

        var error = SingleError(stages);

        Assert.That((error.Key, error.Line), Is.EqualTo(("model.init_from.stage", LineOf(stages, "init_from"))));
        Assert.That(error.Message, Does.Contain("stage continue takes its weights from stage pretrain but does not run after it")
            .And.Contain("add pretrain to stages.continue.after"));
    }

    [Test]
    public void Parse_InitFromAStageRunBeforeThroughAnother_IsAllowed()
    {
        var trials = TrialComponents.Expand(Parse("""
            stages:
              pretrain:
              middle:
                after: pretrain
              continue:
                after: middle
                model:
                  init_from: {stage: pretrain, pick: last}
            """));

        Assert.That(trials[^1].InitFromStage!.Stage, Is.EqualTo("pretrain"));
    }

    [TestCase("{stage: nowhere}", "model.init_from.stage", "unknown stage \"nowhere\"")]
    [TestCase("{stage: pretrain, pick: worst}", "model.init_from.pick", "best-eval")]
    [TestCase("{stage: pretrain, pick: 2}", "model.init_from.pick", "stage pretrain has 1 trial(s)")]
    [TestCase("{stage: pretrain, choose: last}", "model.init_from.choose", "unknown key \"choose\"")]
    [TestCase("{pick: last}", "model.init_from.stage", "needs stage")]
    public void Parse_BadStageReference_IsAnErrorAtItsKey(string reference, string key, string message)
    {
        var stages = $"""
            stages:
              pretrain:
              continue:
                after: pretrain
                model:
                  init_from: {reference}
            """;

        var error = SingleError(stages);

        Assert.That((error.Key, error.Line), Is.EqualTo((key, LineOf(stages, "init_from"))));
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void Parse_BestEvalFromAStageWithoutEvalData_IsAnError()
    {
        var error = SingleError("""
            stages:
              pretrain:
                data:
                  eval: []
              continue:
                after: pretrain
                model:
                  init_from: {stage: pretrain, pick: best-eval}
            """);

        Assert.That(error.Key, Is.EqualTo("model.init_from.pick"));
        Assert.That(error.Message, Does.Contain("stage pretrain has no data.eval"));
    }

    [Test]
    public void Parse_StageReferenceInAFileWithoutStages_IsAnError()
    {
        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(Defaults.Replace("  heads: 2", "  heads: 2\n  init_from: {stage: pretrain}"), FilePath))!;

        Assert.That(error.Errors.Single().Key, Is.EqualTo("model.init_from"));
        Assert.That(error.Errors.Single().Message, Does.Contain("this file has no stages:"));
    }

    [Test]
    public void Parse_BadValueInOneStage_NamesTheStageAndItsLine()
    {
        const string stages = """
            stages:
              pretrain:
              continue:
                after: pretrain
                model:
                  d_model: -3
            """;

        var error = SingleError(stages);

        Assert.That((error.Key, error.Line), Is.EqualTo(("model.d_model", LineOf(stages, "d_model: -3"))));
        Assert.That(error.Message, Does.EndWith("(stage continue)"));
    }

    [Test]
    public void Parse_TopLevelKeyWrongInSeveralStages_IsReportedOnceNamingThem()
    {
        // local_window shapes Ettin models only: the file's key is wrong for the two stages that switch to gpt.
        var yaml = Defaults.Replace("  heads: 2", "  heads: 2\n  local_window: 16") + """

            stages:
              a:
                model: {arch: gpt}
              b:
                model: {arch: gpt}
              c:
            """;

        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Parse(yaml, FilePath))!;

        Assert.That(error.Errors.Select(e => (e.Key, e.Line)), Is.EqualTo(new[] { ("model.local_window", 11) }));
        Assert.That(error.Errors[0].Message, Does.Contain("local_window applies to").And.EndWith("(stages a, b)"));
    }

    [Test]
    public void Parse_TopLevelSweepWithStages_IsAnError()
    {
        const string stages = """
            sweep:
              grid:
                optimizer.lr: [1.0e-3]
            stages:
              pretrain:
            """;

        var error = SingleError(stages);

        Assert.That((error.Key, error.Line), Is.EqualTo(("sweep", LineOf(stages, "sweep:"))));
        Assert.That(error.Message, Does.Contain("each stage has its own"));
    }

    [TestCase("    name: other\n", "stages.pretrain.name", "unknown key \"name\"")]
    [TestCase("    modle:\n      d_model: 8\n", "stages.pretrain.modle", "did you mean \"model\"")]
    public void Parse_UnknownKeyInAStage_ListsTheAllowedKeys(string body, string key, string message)
    {
        var error = SingleError("stages:\n  pretrain:\n" + body);

        Assert.That(error.Key, Is.EqualTo(key));
        Assert.That(error.Message, Does.Contain(message).And.Contain("after, sweep, seed, data, tokenizer, model"));
    }

    [Test]
    public void Parse_BadStageName_IsAnError()
    {
        var error = SingleError("stages:\n  Pre Train:\n");

        Assert.That(error.Key, Is.EqualTo("stages.Pre Train"));
        Assert.That(error.Message, Does.Contain("not a valid stage name"));
    }

    [Test]
    public void Load_StageDataPatternThatMatchesNothing_IsAnErrorAtItsLine()
    {
        using var fixture = new SpecFixture();
        const string stages = """
            stages:
              pretrain:
              finetune:
                after: pretrain
                data:
                  train: data/finetune
            """;
        var path = fixture.WriteYaml(Defaults + "\n" + stages);

        var error = Assert.Throws<SpecException>(() => ExperimentLoader.Load(path))!;

        Assert.That(error.Errors.Select(e => (e.Key, e.Line)), Is.EqualTo(new[] { ("data.train", LineOf(stages, "data/finetune")) }));
        Assert.That(error.Errors[0].Message, Does.Contain("data/finetune"));
    }

    [Test]
    public void Parse_FileWithoutStages_HasNoStagesAndUnchangedTrialIds()
    {
        var spec = ExperimentLoader.Parse(Defaults, FilePath);

        var trials = TrialComponents.Expand(spec);

        Assert.That(spec.Stages, Is.Null);
        Assert.That(trials.Select(t => (t.Id, t.Stage)), Is.EqualTo(new[] { ("pipe-t000", (string?)null) }));
    }
}
