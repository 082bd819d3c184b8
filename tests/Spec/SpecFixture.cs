namespace Training.Tests.Spec;

/// <summary>
/// A temp folder with experiment files and the data they point at (empty *.parquet files: the loader only
/// checks that they exist). Line numbers in tests refer to the YAML texts written through it.
/// </summary>
internal sealed class SpecFixture : IDisposable
{
    public SpecFixture()
    {
        Folder = Path.Combine(Path.GetTempPath(), "spec-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Folder);
        CreateFile("data/train/shard-000.parquet");
        CreateFile("data/train/shard-001.parquet");
        CreateFile("data/eval/shard-000.parquet");
    }

    public string Folder { get; }

    public string CreateFile(string relativePath)
    {
        var path = Path.Combine(Folder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, []);
        return path;
    }

    public string WriteYaml(string text, string name = "experiment.yaml")
    {
        var path = Path.Combine(Folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    public string PathOf(string relativePath) => Path.GetFullPath(Path.Combine(Folder, relativePath));

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    /// <summary>Every key set (layers given as encoder/decoder split); the sweep-free part of the docs' example.</summary>
    public const string FullYaml = """
        name: quickstart
        seed: 1234
        data:
          train: [data/train]
          eval: [data/eval/*.parquet]
        tokenizer:
          kind: cl100k
          sentinels: 50
        model:
          arch: encoder-decoder
          d_model: 192
          layers: 6
          encoder_layers: 4
          decoder_layers: 2
          heads: 6
          kv_heads: 3
          head_dim: 32
          ffn_dim: 768
          mlp: swiglu
          dropout: 0.05
          rope_theta: 50000
          norm_eps: 1.0e-5
        objective:
          kind: span-corruption
          input_length: 96
          noise_density: 0.2
          mean_span_length: 2.5
        optimizer:
          kind: adamw
          lr: 1.0e-3
          beta1: 0.85
          beta2: 0.98
          eps: 1.0e-7
          weight_decay: 0.05
          grad_clip: 0.5
        schedule:
          kind: wsd
          warmup_steps: 20
          min_lr_ratio: 0.05
          decay_fraction: 0.3
        train:
          steps: 300
          global_batch: 32
          micro_batch: 8
          eval_every: 50
          eval_batches: 2
          checkpoint_every: 100
          keep_checkpoints: 2
          log_every: 5
        resources:
          workers: 2
          threads: 3
          device: cuda:1
          max_concurrent_trials: 2
        """;

    /// <summary>Only the required keys.</summary>
    public const string MinimalYaml = """
        name: mini
        data:
          train: data/train
        model:
          arch: encoder-decoder
        objective:
          kind: span-corruption
        """;
}
