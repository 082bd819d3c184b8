using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Teaching;
using Training.Shared.Training;
using Training.Tests.Support;
using static TorchSharp.torch;

namespace Training.Tests.Distillation;

/// <summary>Task objectives end to end in one process: seq2seq for both model families, and distillation through a real
/// teacher served on a loopback socket.</summary>
public sealed class TaskTrainingTests
{
    private static (TrialOutcome Outcome, List<TrainingEvent> Events) Train(string root, string yaml, Func<ITokenizer, ITaskObjective>? objective = null)
    {
        var path = Path.Combine(root, "experiment.yaml");
        File.WriteAllText(path, yaml);
        var trial = TrialComponents.Expand(ExperimentLoader.Load(path)).Single();
        var events = new List<TrainingEvent>();
        var outcome = TorchThread.Run("task-trainer", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(Path.Combine(root, "run")), $"{trial.Id}/checkpoints",
                e => { lock (events) events.Add(e); }, TaskObjective: objective));
            return trainer.Run();
        }).GetAwaiter().GetResult();
        return (outcome, events);
    }

    [Test]
    public void Seq2Seq_EncoderDecoderOnReversal_LossFallsAndExactMatchIsReported()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);

        var (outcome, events) = Train(dir.Path, DistillationFixture.StudentExperiment("student", 60, """
            objective:
              kind: seq2seq
              input_length: 10
              target_length: 10
            """));

        var steps = events.OfType<StepMetrics>().ToList();
        var eval = events.OfType<EvalMetrics>().Last();
        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(TrialOutcome.Completed));
            Assert.That(steps[^1].Loss, Is.LessThan(steps[0].Loss * 0.7), "the loss falls");
            Assert.That(eval.ExactMatch, Is.Not.Null.And.InRange(0.0, 1.0));
            Assert.That(eval.Tokens, Is.GreaterThan(0));
        });
    }

    [Test]
    public void Seq2Seq_DecoderOnly_IsScoredOnTheTargetTokensOnly()
    {
        using var scope = NewDisposeScope();
        var tokenizer = new ByteTokenizer(0);
        var examples = DistillationFixture.ReversalExamples(4, 3).Select(e => TaskTokens.From(e, tokenizer, 10, 10)).ToList();
        var config = new global::Training.Shared.Models.TransformerConfig(tokenizer.VocabSize, 32, 0, 2, 2, 2, 16, 64)
            { Architecture = global::Training.Shared.Models.ModelArchitecture.DecoderOnly }.WithVocabulary(tokenizer.VocabSize, tokenizer.Special.Pad);
        var model = global::Training.Shared.Models.ModelFactory.Create(config, 1, CPU);

        var output = new Seq2SeqObjective(tokenizer.Special).Compute(model, examples, [0, 1, 2, 3], CPU);

        Assert.That(output.TargetTokens, Is.EqualTo(examples.Sum(e => e.Target.Length)), "every target token (EOS included) and nothing of the prompt");
    }

    [Test]
    public void Distill_TeacherServedOnASocket_StudentTrainsOnAndOffPolicyAndEveryTargetTokenIsScored()
    {
        using var dir = new TempDirectory();
        DistillationFixture.WriteTask(dir.Path);
        var teacherCheckpoints = DistillationFixture.TrainTeacher(dir.Path, steps: 20);
        using var teacher = TorchThread.Run("load", () => TeacherModel.Load(teacherCheckpoints, null, CPU)).GetAwaiter().GetResult();
        using var server = TeacherStreamServer.Start("127.0.0.1", 0, teacher, _ => { });
        TeacherPool? pool = null;

        var (outcome, events) = Train(dir.Path, DistillationFixture.StudentExperiment("student", 12, $"""
            objective:
              kind: distill
              input_length: 10
              target_length: 10
            distill:
              teacher: {teacherCheckpoints}
              on_policy: 0.5
              max_new_tokens: 10
            """, "resources:\n  teachers: 1"), tokenizer =>
        {
            pool = new TeacherPool(TokenizerIds.Of(tokenizer), new TeacherPoolOptions());
            pool.UpdateEndpoints([server.Endpoint]);
            var spec = ExperimentLoader.Load(Path.Combine(dir.Path, "experiment.yaml"));
            return new DistillationObjective(spec.Distill, spec.Objective, spec.Seed, tokenizer.Special, r => pool.Score(r));
        });

        var steps = events.OfType<StepMetrics>().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(outcome, Is.EqualTo(TrialOutcome.Completed));
            Assert.That(steps.Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, 12).Select(i => (long)i)));
            Assert.That(steps.All(s => double.IsFinite(s.Loss) && s.Loss > 0), Is.True);
            Assert.That(pool!.Statistics.Requests, Is.EqualTo(12), "one teacher request per micro-batch");
        });
        pool!.Dispose();
    }

    [Test]
    public void OnPolicyShare_IsAFunctionOfTheSeedAndTheExamples()
    {
        var special = new ByteTokenizer(0).Special;
        DistillationObjective With(double share, long seed) => new(DistillSpec.Default with { Teacher = "x", OnPolicy = share },
            new ObjectiveSpec(ObjectiveKind.Distill, 10, 0, 0, TargetLength: 10), seed, special, _ => throw new InvalidOperationException());
        var batches = Enumerable.Range(0, 400).Select(i => (long)i * 8).ToList();

        var half = batches.Count(b => With(0.5, 7).IsOnPolicy(b));
        Assert.Multiple(() =>
        {
            Assert.That(half, Is.InRange(160, 240), "about half the micro-batches");
            Assert.That(batches.Select(b => With(0.5, 7).IsOnPolicy(b)), Is.EqualTo(batches.Select(b => With(0.5, 7).IsOnPolicy(b))), "repeatable");
            Assert.That(batches.Select(b => With(0.5, 8).IsOnPolicy(b)), Is.Not.EqualTo(batches.Select(b => With(0.5, 7).IsOnPolicy(b))), "seeded");
            Assert.That(batches.Count(b => With(0, 7).IsOnPolicy(b)), Is.Zero);
            Assert.That(batches.Count(b => With(1, 7).IsOnPolicy(b)), Is.EqualTo(400));
        });
    }
}
