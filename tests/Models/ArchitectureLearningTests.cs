using NUnit.Framework;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Tests.Support;
using Training.Shared.Training;

namespace Training.Tests.Models;

/// <summary>
/// Every family learns: a tiny model trained by the real trainer (spec -> tokenizer -> objective -> model ->
/// optimizer) on real parquet shards must bring its eval loss well below the unigram entropy of the data, the
/// loss of a model that knows only how often each token occurs, within a bounded number of steps.
/// </summary>
[Category("Slow")]
public class ArchitectureLearningTests
{
    private static TempDirectory corpus = null!;
    private static double unigramEntropy;

    [OneTimeSetUp]
    public static void WriteCorpus()
    {
        corpus = new TempDirectory();
        TestCorpus.Write(corpus.Path);
        unigramEntropy = UnigramEntropy(ShardFiles.Resolve([corpus.Combine("train")], corpus.Path), new ByteTokenizer(0));
    }

    [OneTimeTearDown]
    public static void DeleteCorpus() => corpus.Dispose();

    /// <summary>Entropy in nats of the token distribution of the shards (documents followed by EOS, as the stream reads them).</summary>
    private static double UnigramEntropy(IReadOnlyList<string> files, ITokenizer tokenizer)
    {
        var counts = new Dictionary<int, long>();
        foreach (var file in files)
        {
            using var reader = new ShardReader(file);
            foreach (var document in reader.ReadAll())
                foreach (var id in tokenizer.Encode(document.Text).Append(tokenizer.Special.Eos))
                    counts[id] = counts.GetValueOrDefault(id) + 1;
        }
        double total = counts.Values.Sum();
        return -counts.Values.Sum(c => c / total * Math.Log(c / total));
    }

    private static string Experiment(string arch, string model, string optimizer, int steps, string gradClip) => $"""
        name: learn
        seed: 11
        data:
          train: train
          eval: eval
        tokenizer:
          kind: byte
          sentinels: 20
        model:
          arch: {arch}
          dropout: 0.0
        {Indented(model)}
        objective:
          kind: auto
          input_length: 32
        optimizer:
          kind: {optimizer}
          lr: 3.0e-3
          beta2: 0.98
          grad_clip: {gradClip}
        schedule:
          kind: wsd
          warmup_steps: 10
        train:
          steps: {steps}
          global_batch: 16
          eval_batches: 4
        """;

    private static string Indented(string model) => string.Join("\n", model.Split('\n').Select(line => "  " + line));

    [TestCase("encoder-decoder", "d_model: 64\nencoder_layers: 2\ndecoder_layers: 1\nheads: 4\nhead_dim: 16\nffn_dim: 128", "adamw", 160)]
    [TestCase("decoder-only", "d_model: 64\nlayers: 2\nheads: 4\nhead_dim: 16\nffn_dim: 128", "adamw", 120)]
    [TestCase("gpt", "d_model: 64\nlayers: 2\nheads: 4\nnorm_position: post", "adamw", 120)]
    [TestCase("parallel-gpt", "d_model: 64\nlayers: 2\nheads: 4", "adamw", 120)]
    [TestCase("lc-gpt", "d_model: 64\nlayers: 2\nheads: 4", "adamw", 200)]
    [TestCase("cc-gpt", "d_model: 64\nlayers: 2\nheads: 4", "adamw", 200)]
    [TestCase("encoder-only", "d_model: 64\nlayers: 3\nheads: 4\nhead_dim: 16\nffn_dim: 96\nlocal_window: 8", "stable-adamw", 260)]
    // The Ettin recipe's StableAdamW clips updates itself: one case trains without gradient clipping.
    [TestCase("ettin-decoder", "d_model: 64\nlayers: 3\nheads: 4\nhead_dim: 16\nffn_dim: 96\nlocal_window: 8", "stable-adamw", 120, "0")]
    public void Train_TinyModel_EvalLossFallsWellBelowTheUnigramEntropy(string arch, string model, string optimizer, int steps, string gradClip = "1.0")
    {
        var path = corpus.Combine($"{arch}.yaml");
        File.WriteAllText(path, Experiment(arch, model, optimizer, steps, gradClip));
        var trial = TrialComponents.Expand(ExperimentLoader.Load(path))[0];

        var (first, last) = TorchThread.Run($"learn-{arch}", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(corpus.Combine($"ck-{arch}")), "ck", _ => { }));
            var before = trainer.Evaluate()!;
            for (var step = 0; step < steps; step++) trainer.TrainStep();
            return (before, trainer.Evaluate()!);
        }).GetAwaiter().GetResult();

        TestContext.Out.WriteLine($"{arch} ({trial.Spec.Objective.Kind}): eval loss {first.Loss:F3} -> {last.Loss:F3} after {steps} steps, " +
                                  $"accuracy {last.Accuracy:P1}; unigram entropy {unigramEntropy:F3} nats");
        Assert.That(last.Loss, Is.LessThan(0.7 * unigramEntropy));
        Assert.That(first.Loss, Is.GreaterThan(unigramEntropy), "an untrained model knows less than the unigram counts");
    }
}
