using Training.Shared.Data;

namespace Training.Tests.Support;

/// <summary>Real parquet shards in the FineWeb-Edu schema, written into a temp folder for tests.</summary>
public static class TestCorpus
{
    private static readonly string[] Subjects = ["The river", "A small town", "The old library", "Our teacher", "The market", "A quiet farmer", "The committee", "The young pilot"];
    private static readonly string[] Verbs = ["opened", "described", "visited", "painted", "remembered", "measured", "repaired", "announced"];
    private static readonly string[] Objects = ["the northern bridge", "a long letter", "the county records", "seven green boxes", "the morning train", "an honest answer", "the winter garden", "a new school"];

    /// <summary>Simple English sentences: structured enough that a tiny model's loss falls quickly.</summary>
    public static IEnumerable<string> Documents(int count, int seed)
    {
        var rng = new Random(seed);
        for (var d = 0; d < count; d++)
        {
            var sentences = Enumerable.Range(0, 4 + rng.Next(4)).Select(_ =>
                $"{Subjects[rng.Next(Subjects.Length)]} {Verbs[rng.Next(Verbs.Length)]} {Objects[rng.Next(Objects.Length)]}.");
            yield return string.Join(' ', sentences);
        }
    }

    /// <summary>Writes <c>train/</c> (several shards, several row groups each) and <c>eval/</c> under <paramref name="root"/>.</summary>
    public static void Write(string root, int trainDocuments = 240, int evalDocuments = 24)
    {
        Directory.CreateDirectory(Path.Combine(root, "train"));
        Directory.CreateDirectory(Path.Combine(root, "eval"));
        var train = Documents(trainDocuments, seed: 1).Select((t, i) => Document(t, $"train/{i}")).ToList();
        for (var shard = 0; shard * 80 < train.Count; shard++)
            ShardWriter.WriteFile(Path.Combine(root, "train", $"shard-{shard:D5}.parquet"), train.Skip(shard * 80).Take(80), rowGroupSize: 20);
        ShardWriter.WriteFile(Path.Combine(root, "eval", "shard-00000.parquet"),
            Documents(evalDocuments, seed: 2).Select((t, i) => Document(t, $"eval/{i}")), rowGroupSize: 20);
    }

    private static FineWebDocument Document(string text, string id) =>
        new(text, id, "test", $"https://example.org/{id}", id, "en", 1.0, text.Split(' ').Length, 3.0, 3);

    /// <summary>A tiny experiment over the corpus in <paramref name="root"/>; extra YAML lines are appended.</summary>
    public static string TinyExperiment(string root, string name = "tiny", int steps = 6, string extra = "") => $"""
        name: {name}
        seed: 3
        data:
          train: train
          eval: eval
        tokenizer:
          kind: byte
          sentinels: 20
        model:
          arch: encoder-decoder
          d_model: 32
          encoder_layers: 1
          decoder_layers: 1
          heads: 2
          kv_heads: 1
          head_dim: 16
          ffn_dim: 64
        objective:
          kind: span-corruption
          input_length: 32
        optimizer:
          lr: 3.0e-3
        schedule:
          warmup_steps: 1
        train:
          steps: {steps}
          global_batch: 4
          micro_batch: 2
          eval_every: 0
          eval_batches: 2
          checkpoint_every: 3
          keep_checkpoints: 2
          log_every: 1
        {extra}
        """;
}
