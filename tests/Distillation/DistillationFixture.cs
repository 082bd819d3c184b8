using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Tests.Distillation;

/// <summary>A reversal task (prompt: a word, target: the word reversed) in task shards, and experiments over it: a
/// decoder-only teacher trained with seq2seq, and encoder-decoder students.</summary>
public static class DistillationFixture
{
    public static IEnumerable<TaskExample> ReversalExamples(int count, int seed)
    {
        var rng = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var word = new string(Enumerable.Range(0, 3 + rng.Next(4)).Select(_ => (char)('a' + rng.Next(8))).ToArray());
            yield return new TaskExample($"{seed}-{i}", word, new string(word.Reverse().ToArray()));
        }
    }

    /// <summary>Writes <c>tasks/train</c> and <c>tasks/heldout</c> under <paramref name="root"/>.</summary>
    public static void WriteTask(string root, int train = 400, int heldout = 32)
    {
        Directory.CreateDirectory(Path.Combine(root, "tasks", "train"));
        Directory.CreateDirectory(Path.Combine(root, "tasks", "heldout"));
        TaskShardWriter.WriteFile(Path.Combine(root, "tasks", "train", "shard-00000.parquet"), ReversalExamples(train, 1), rowGroupSize: 100);
        TaskShardWriter.WriteFile(Path.Combine(root, "tasks", "heldout", "shard-00000.parquet"), ReversalExamples(heldout, 2), rowGroupSize: 100);
    }

    private const string Common = """
        seed: 5
        data:
          train: tasks/train
          eval: tasks/heldout
        tokenizer:
          kind: byte
          sentinels: 0
        optimizer:
          lr: 3.0e-3
        schedule:
          warmup_steps: 2
        """;

    public static string TeacherExperiment(int steps) => Teacher(steps, """
          arch: decoder-only
          d_model: 32
          layers: 2
          heads: 2
          head_dim: 16
          ffn_dim: 64
        """);

    /// <summary>An encoder-decoder teacher (MiniEnD): wider and deeper than the students, seq2seq on the same task.</summary>
    public static string EncoderDecoderTeacherExperiment(int steps) => Teacher(steps, """
          arch: encoder-decoder
          d_model: 48
          encoder_layers: 2
          decoder_layers: 2
          heads: 3
          head_dim: 16
          ffn_dim: 96
        """);

    /// <summary>A teacher trained with seq2seq on the task; <paramref name="model"/> is the model section's body.</summary>
    private static string Teacher(int steps, string model) => $"""
        name: teacher
        {Common}
        model:
        {model}
        objective:
          kind: seq2seq
          input_length: 10
          target_length: 10
        train:
          steps: {steps}
          global_batch: 8
          eval_batches: 2
          log_every: 1
        """;

    /// <param name="objective">The student's objective section body and any distill section, as YAML.</param>
    public static string StudentExperiment(string name, int steps, string objective, string resources = "") => $"""
        name: {name}
        {Common}
        model:
          arch: encoder-decoder
          d_model: 32
          encoder_layers: 1
          decoder_layers: 1
          heads: 2
          head_dim: 16
          ffn_dim: 64
        {objective}
        train:
          steps: {steps}
          global_batch: 8
          eval_batches: 2
          checkpoint_every: 1000
          log_every: 1
        {resources}
        """;

    /// <summary>Trains the teacher experiment (decoder-only, or <paramref name="yaml"/>) in this process; returns its
    /// checkpoints folder (a distill.teacher source).</summary>
    public static string TrainTeacher(string root, int steps, string? yaml = null)
    {
        var path = Path.Combine(root, "teacher.yaml");
        File.WriteAllText(path, yaml ?? TeacherExperiment(steps));
        var spec = ExperimentLoader.Load(path);
        var trial = TrialComponents.Expand(spec).Single();
        var blobs = new LocalFolderBlobStore(Path.Combine(root, "teacher-run"));
        var done = TorchThread.Run("teacher", () =>
        {
            using var trainer = new Trainer(new TrainerOptions(trial, blobs, "teacher/checkpoints", _ => { }));
            return trainer.Run();
        }).GetAwaiter().GetResult();
        if (done != TrialOutcome.Completed) throw new InvalidOperationException($"the teacher trial ended {done}");
        return Path.Combine(root, "teacher-run", "teacher", "checkpoints");
    }
}
