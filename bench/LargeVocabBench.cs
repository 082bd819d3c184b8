using System.Diagnostics;
using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// The large-vocabulary case of issue 15: a decoder-only model with the cl100k tokenizer (about 13.6M parameters, 12.8M
/// of them the tied embedding; d_model 128, sequence 64, batch 8) trained on the sample shards, one rank. Tokens/s with
/// the cross-entropy on full [tokens x vocab] logits (reference) against the chunked tied-head loss (subject), the two
/// alternating on one trainer, same settings, same run.
/// </summary>
public static class LargeVocabBench
{
    private const int WarmupSteps = 2, Pairs = 8, StepsPerPair = 2;

    private const string ModelYaml = """
          arch: decoder-only
          d_model: 128
          layers: 4
          heads: 4
          kv_heads: 4
          head_dim: 32
          ffn_dim: 512
          mlp: gelu
          dropout: 0.0
        """;

    public static void Run(string outDir)
    {
        var work = Path.Combine(Path.GetTempPath(), "bench-vocab-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            var data = Path.Combine(ResultFiles.RepositoryRoot, "data", "sample");
            var yaml = $"""
                name: cl100k-decoder
                seed: 15
                data:
                  train: {Path.Combine(data, "train")}
                  eval: {Path.Combine(data, "eval")}
                tokenizer:
                  kind: cl100k
                  sentinels: 0
                model:
                {ModelYaml}
                objective:
                  kind: clm
                  input_length: 64
                optimizer:
                  kind: adamw
                  lr: 1.0e-3
                train:
                  steps: 1000
                  global_batch: 8
                  micro_batch: 8
                  eval_every: 0
                  checkpoint_every: 0
                resources:
                  threads: {Math.Min(2, Environment.ProcessorCount)}
                """;
            var path = Path.Combine(work, "cl100k-decoder.yaml");
            File.WriteAllText(path, yaml);
            var trial = TrialComponents.Expand(ExperimentLoader.Load(path)).Single();
            var result = TorchThread.Run("bench-vocab", () => Measure(trial, work)).GetAwaiter().GetResult();
            Write(outDir, trial, result);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private sealed record Result(long Parameters, long EmbeddingParameters, int Vocab, long TokensPerStep, Interleaved Pairs, List<double> FullSteps, List<double> ChunkedSteps);

    private static Result Measure(Trial trial, string work)
    {
        TorchSharp.torch.set_num_threads(trial.Spec.Resources.Threads);
        using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(Path.Combine(work, "store")), "checkpoints", _ => { }));
        var defaultThreshold = ChunkedCrossEntropy.MinLogitElements;
        var tokensPerStep = 0L;
        var fullSteps = new List<double>();
        var chunkedSteps = new List<double>();
        double Steps(bool chunked, List<double> stepSeconds)
        {
            // Off: never chunk, cross_entropy on the full logits as before. On: the shared code's own threshold.
            ChunkedCrossEntropy.MinLogitElements = chunked ? defaultThreshold : long.MaxValue;
            var tokens = 0.0;
            var clock = Stopwatch.StartNew();
            for (var s = 0; s < StepsPerPair; s++)
            {
                var m = trainer.TrainStep();
                stepSeconds.Add(m.StepSeconds);
                tokens += m.TokensPerSecond * m.StepSeconds;
            }
            tokensPerStep = (long)Math.Round(tokens / StepsPerPair);
            return tokens / clock.Elapsed.TotalSeconds;
        }
        try
        {
            for (var i = 0; i < WarmupSteps; i++) trainer.TrainStep();
            var pairs = Interleaved.Measure(Pairs, () => Steps(chunked: false, fullSteps), () => Steps(chunked: true, chunkedSteps), warmup: 0);
            var config = trainer.Model.Config;
            return new Result(trainer.ParameterCount, (long)config.VocabSize * config.DModel, config.VocabSize, tokensPerStep, pairs, fullSteps, chunkedSteps);
        }
        finally
        {
            ChunkedCrossEntropy.MinLogitElements = defaultThreshold;
        }
    }

    private static void Write(string outDir, Trial trial, Result r)
    {
        var p = r.Pairs;
        static string Times(double v) => v.ToString("F2", CultureInfo.InvariantCulture) + "x";
        var json = new
        {
            machine = new { cores = Environment.ProcessorCount, threads = trial.Spec.Resources.Threads, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            model = new
            {
                what = "decoder-only, cl100k tokenizer, tied embedding; d_model 128, 4 layers, 4 heads x 32, FFN 512 GELU; trained on data/sample (Brown corpus shards)",
                parameters = r.Parameters,
                embedding_parameters = r.EmbeddingParameters,
                vocab = r.Vocab,
                sequence = trial.Spec.Objective.InputLength,
                global_batch = trial.Spec.Train.GlobalBatch,
                ranks = 1,
                tokens_per_step = r.TokensPerStep,
            },
            full_logits_tokens_per_second = new { median = Stats.Median(p.Reference), all = p.Reference },
            chunked_tokens_per_second = new { median = Stats.Median(p.Subject), all = p.Subject },
            median_step_seconds = new { full_logits = Stats.Median(r.FullSteps), chunked = Stats.Median(r.ChunkedSteps) },
            chunk_logit_elements = ChunkedCrossEntropy.ChunkLogitElements,
            chunked_vs_full = p.ToJson("interleaved on one trainer: 2 steps with full logits, 2 steps chunked, ... (ratio = chunked tokens/s / full-logits tokens/s of the pair)"),
        };
        ResultFiles.WriteJson(outDir, "cl100k-decoder.json", json);
        var md = new StringBuilder()
            .AppendLine("# Large vocabulary: cl100k decoder-only training step")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {trial.Spec.Resources.Threads} torch threads, one rank; load average (1/5/15 min) {p.LoadAtStart} at the start, {p.LoadAtEnd} at the end.")
            .AppendLine(CultureInfo.InvariantCulture, $"Model: {json.model.what}. {r.Parameters:N0} parameters, {r.EmbeddingParameters:N0} of them the {r.Vocab:N0} x 128 embedding; sequence {json.model.sequence}, batch {json.model.global_batch} ({r.TokensPerStep} tokens per step).")
            .AppendLine(CultureInfo.InvariantCulture, $"Method: {Pairs} pairs on one trainer after {WarmupSteps} warm-up steps, each {StepsPerPair} steps with cross_entropy on the full [{r.TokensPerStep} x {r.Vocab:N0}] float32 logits (before) then {StepsPerPair} steps with the chunked tied-head loss (after, chunks of {ChunkedCrossEntropy.ChunkLogitElements / r.Vocab} rows).")
            .AppendLine()
            .AppendLine("| loss | median tokens/s | all pairs | median step |")
            .AppendLine("|---|---|---|---|")
            .AppendLine(CultureInfo.InvariantCulture, $"| full logits (before) | {Stats.Median(p.Reference):N0} | {string.Join(", ", p.Reference.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)))} | {Stats.Median(r.FullSteps) * 1000:F0} ms |")
            .AppendLine(CultureInfo.InvariantCulture, $"| chunked tied head (after) | {Stats.Median(p.Subject):N0} | {string.Join(", ", p.Subject.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)))} | {Stats.Median(r.ChunkedSteps) * 1000:F0} ms |")
            .AppendLine(CultureInfo.InvariantCulture, $"| **after / before (median of per-pair ratios)** | **{(p.Stable ? Times(p.MedianRatio) : "no headline")}** | {p.Detail(Times)} | |")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Why chunk: the full path holds [{r.TokensPerStep} x {r.Vocab:N0}] float32 logits, their log-softmax for backward and their gradient, {r.TokensPerStep * r.Vocab * 4 / 1e6:F0} MB each; the chunked path one chunk's logits at a time ({ChunkedCrossEntropy.ChunkLogitElements / r.Vocab * r.Vocab * 4 / 1e6:F0} MB) and the head's gradient. The FLOPs are the same: the ratio shows what chunking costs or saves in time.")
            .AppendLine("Not measured here: the gradient all-reduce of the dense embedding gradient at 2 ranks (issue 15's other large-vocabulary item).")
            .ToString();
        ResultFiles.WriteText(outDir, "cl100k-decoder.md", md);
        Console.WriteLine(md);
    }
}
