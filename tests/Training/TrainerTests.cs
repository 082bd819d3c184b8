using NUnit.Framework;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Tests.Support;
using Training.Shared.Training;

namespace Training.Tests.Training;

public class TrainerTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
    }

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private Trial TrialFrom(string yaml)
    {
        var path = _dir.Combine($"experiment-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return TrialComponents.Expand(ExperimentLoader.Load(path))[0];
    }

    private static List<TrainingEvent> RunTrainer(Trial trial, IBlobStore blobs, Func<bool>? stop = null)
    {
        var events = new List<TrainingEvent>();
        TorchThread.Run("test-trainer", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, blobs, "checkpoints", e => { lock (events) events.Add(e); }, stop));
            return trainer.Run();
        }).GetAwaiter().GetResult();
        return events;
    }

    [Test]
    public void Run_StoppedAndResumed_ReproducesUninterruptedLossesExactly()
    {
        var trial = TrialFrom(TestCorpus.TinyExperiment(_dir.Path, steps: 8));
        var uninterrupted = RunTrainer(trial, new LocalFolderBlobStore(_dir.Combine("a")));

        var blobs = new LocalFolderBlobStore(_dir.Combine("b"));
        var firstHalf = RunTrainer(trial, blobs, stop: StopAfterSteps(5));
        var secondHalf = RunTrainer(trial, blobs);

        var expected = uninterrupted.OfType<StepMetrics>().Select(m => (m.Step, m.Loss)).ToList();
        var resumed = firstHalf.OfType<StepMetrics>().Concat(secondHalf.OfType<StepMetrics>()).Select(m => (m.Step, m.Loss)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(firstHalf.OfType<TrialStarted>().Single().ResumedFrom, Is.Null);
            Assert.That(secondHalf.OfType<TrialStarted>().Single().ResumedFrom, Is.EqualTo("step-00000005"));
            Assert.That(expected.Select(e => e.Step), Is.EqualTo(Enumerable.Range(1, 8).Select(i => (long)i)));
            Assert.That(resumed, Is.EqualTo(expected), "bit-identical losses after resume");
        });
    }

    private static Func<bool> StopAfterSteps(int steps)
    {
        // Polled before each step: answers true once `steps` steps have run.
        var polls = 0;
        return () => ++polls > steps;
    }

    [Test]
    public void Run_CheckpointsAtIntervalAndEnd_KeepsNewestTwo()
    {
        var trial = TrialFrom(TestCorpus.TinyExperiment(_dir.Path, steps: 9, extra: ""));
        var blobs = new LocalFolderBlobStore(_dir.Combine("c"));
        var events = RunTrainer(trial, blobs);
        var committed = events.OfType<CheckpointCommitted>().Select(c => c.Step).ToList();
        var kept = new CheckpointStore(blobs, "checkpoints").ListAsync().GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(committed, Is.EqualTo(new long[] { 3, 6, 9 }));
            Assert.That(kept.Select(m => m.Step), Is.EqualTo(new long[] { 6, 9 }));
            Assert.That(kept[^1].Files.Select(f => f.Name), Is.EquivalentTo(new[] { "model.safetensors", "optimizer.safetensors", "state.json", "spec.yaml" }));
        });
    }

    [Test]
    public void Run_ResumingACompletedTrial_TakesNoFurtherSteps()
    {
        var trial = TrialFrom(TestCorpus.TinyExperiment(_dir.Path, steps: 3));
        var blobs = new LocalFolderBlobStore(_dir.Combine("d"));
        RunTrainer(trial, blobs);
        var again = RunTrainer(trial, blobs);
        Assert.That(again.OfType<StepMetrics>(), Is.Empty);
        Assert.That(again.OfType<TrialStarted>().Single().StartStep, Is.EqualTo(3));
    }

    [Test]
    public void Run_WithEvalSplit_ReportsEvalLossBelowUniform()
    {
        var trial = TrialFrom(TestCorpus.TinyExperiment(_dir.Path, steps: 40, extra: ""));
        var events = RunTrainer(trial, new LocalFolderBlobStore(_dir.Combine("e")));
        var eval = events.OfType<EvalMetrics>().Last();
        var uniform = Math.Log(259 + 20);
        var losses = events.OfType<StepMetrics>().Select(m => m.Loss).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(eval.Step, Is.EqualTo(40));
            Assert.That(eval.Loss, Is.LessThan(uniform * 0.75), "the model learned something");
            Assert.That(losses.Skip(35).Average(), Is.LessThan(losses.Take(5).Average() * 0.8), "training loss falls");
        });
    }
}
