using NUnit.Framework;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Tests.Support;
using Training.Shared.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Tests.Training;

public class TrainerMemoryTests
{
    [Test]
    public void TrainStep_ManySteps_LiveTensorCountStaysFlat()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        var path = dir.Combine("tiny.yaml");
        File.WriteAllText(path, TestCorpus.TinyExperiment(dir.Path, steps: 60));
        var trial = TrialComponents.Expand(ExperimentLoader.Load(path))[0];

        var counts = TorchThread.Run("memory-test", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(dir.Combine("ckpt")), "checkpoints", _ => { }));
            var samples = new List<long>();
            for (var step = 0; step < 60; step++)
            {
                trainer.TrainStep();
                if (step % 10 == 9) trainer.Evaluate();
                samples.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            }
            return samples;
        }).GetAwaiter().GetResult();

        // After the first steps allocate optimizer state and gradients, nothing more may accumulate.
        Assert.That(counts.Skip(5).Max(), Is.EqualTo(counts[5]), $"live tensors over steps: {string.Join(",", counts)}");
    }
}
