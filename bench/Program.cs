using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchSharp;
using Training.Bench.Generation;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;
using static TorchSharp.torch;

// Training throughput against this machine's own matrix-multiply rate, measured in the same run.
string Arg(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
var outDir = Arg("--out", "bench/results");
var experiment = Arg("--experiment", "experiments/quickstart.yaml");
Directory.CreateDirectory(outDir);
// `--only allreduce|data-parallel|generation|train|shards|checkpoint|dashboard|distill|scheduling|recovery` runs one part; without it, all parts run.
var only = Arg("--only", "all");
if (only is not ("all" or "allreduce" or "data-parallel" or "generation" or "train" or "shards" or "checkpoint" or "dashboard" or "distill" or "scheduling" or "recovery"))
{
    Console.Error.WriteLine($"bench: --only {only} is not one of allreduce, data-parallel, generation, train, shards, checkpoint, dashboard, distill, scheduling, recovery.");
    return 2;
}
if (only is "all" or "dashboard")
    Training.Bench.DashboardBench.Run(outDir);
if (only is "all" or "scheduling")
    Training.Bench.SchedulingBench.Run(outDir, int.Parse(Arg("--sim-workers", "1000")), int.Parse(Arg("--sim-trials", "10000")),
        double.Parse(Arg("--sim-trial-seconds", "3"), CultureInfo.InvariantCulture));
if (only is "all" or "recovery")
    Training.Bench.RecoveryBench.Run(outDir);
if (only is "all" or "allreduce")
    Training.Bench.AllReduceBench.Run(outDir);
if (only is "all" or "data-parallel")
    Training.Bench.DataParallelBench.Run(experiment, outDir);
if (only is "all" or "generation")
    await GenerationBench.RunAndWriteAsync(outDir);
if (only is "all" or "distill")
    Training.Bench.DistillationBench.Run(outDir);
if (only is "all" or "checkpoint")
    Training.Bench.CheckpointBench.Run(experiment, outDir);
if (only is "shards")
{
    Training.Bench.ShardReadBench.Run(experiment, outDir);
    return 0;
}
if (only is not ("all" or "train"))
    return 0;

var result = await TorchThread.Run("bench", () =>
{
    var spec = ExperimentLoader.Load(experiment);
    var trial = TrialComponents.Expand(spec)[0];
    set_num_threads(trial.Spec.Resources.Threads);
    var matmul = MatmulRate(trial.Spec.Resources.Threads);

    var scratch = Path.Combine(Path.GetTempPath(), "bench-" + Guid.NewGuid().ToString("N")[..8]);
    try
    {
        using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(scratch), "checkpoints", _ => { }));
        const int warmup = 3, measured = 12;
        for (var i = 0; i < warmup; i++) trainer.TrainStep();
        var steps = new List<double>();
        var tokens = new List<double>();
        for (var i = 0; i < measured; i++)
        {
            var m = trainer.TrainStep();
            steps.Add(m.StepSeconds);
            tokens.Add(m.TokensPerSecond * m.StepSeconds);
        }
        var config = trainer.Model.Config;
        var o = trial.Spec.Objective;
        var corrupted = o.Kind == ObjectiveKind.SpanCorruption ? SpanCorruption.ComputeLengths(o.InputLength, o.NoiseDensity, o.MeanSpanLength) : null;
        var (encoderLength, decoderLength) = corrupted is null ? (0, o.InputLength) : (corrupted.InputLength, corrupted.TargetLength);
        var flopsPerToken = ParameterCount.TrainingFlopsPerToken(config, encoderLength, decoderLength);
        var medianStep = Median(steps);
        var tokensPerStep = tokens.Average();
        var tokensPerSecond = tokensPerStep / medianStep;
        var modelFlops = tokensPerSecond * flopsPerToken;
        return new
        {
            machine = new { cores = Environment.ProcessorCount, threads = trial.Spec.Resources.Threads, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            reference = new { matmul_gflops = matmul / 1e9, what = "float32 square matmul (torch.mm), best of sizes 512/1024/2048" },
            training = new
            {
                experiment = Path.GetRelativePath(Environment.CurrentDirectory, Path.GetFullPath(experiment)).Replace('\\', '/'),
                arch = trial.Spec.Model.Architecture.ToString(),
                parameters = ParameterCount.Count((nn.Module)trainer.Model),
                encoder_tokens = encoderLength,
                decoder_tokens = decoderLength,
                global_batch = trial.Spec.Train.GlobalBatch,
                steps_measured = measured,
                median_step_seconds = medianStep,
                tokens_per_second = tokensPerSecond,
                training_flops_per_token = flopsPerToken,
                model_gflops = modelFlops / 1e9,
                mfu_vs_matmul = modelFlops / matmul,
            },
        };
    }
    finally
    {
        if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
    }
});

var json = JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true });
File.WriteAllText(Path.Combine(outDir, "train-throughput.json"), json);
var t = result.training;
var md = new StringBuilder()
    .AppendLine("# Training throughput")
    .AppendLine()
    .AppendLine(CultureInfo.InvariantCulture, $"Machine: {result.machine.cores} cores, {result.machine.threads} torch threads. Reference: {result.reference.what}.")
    .AppendLine()
    .AppendLine("| measure | value |")
    .AppendLine("|---|---|")
    .AppendLine(CultureInfo.InvariantCulture, $"| matmul rate (reference) | {result.reference.matmul_gflops:F1} GFLOP/s |")
    .AppendLine(CultureInfo.InvariantCulture, $"| model | {t.arch}, {t.parameters:N0} parameters, {t.encoder_tokens}+{t.decoder_tokens} tokens/example, batch {t.global_batch} |")
    .AppendLine(CultureInfo.InvariantCulture, $"| median step | {t.median_step_seconds * 1000:F0} ms |")
    .AppendLine(CultureInfo.InvariantCulture, $"| training tokens/s | {t.tokens_per_second:N0} |")
    .AppendLine(CultureInfo.InvariantCulture, $"| training FLOPs/token | {t.training_flops_per_token / 1e6:F2} MFLOP |")
    .AppendLine(CultureInfo.InvariantCulture, $"| model FLOP/s | {t.model_gflops:F1} GFLOP/s |")
    .AppendLine(CultureInfo.InvariantCulture, $"| **MFU vs matmul rate** | **{t.mfu_vs_matmul:P1}** |")
    .ToString();
File.WriteAllText(Path.Combine(outDir, "train-throughput.md"), md);
Console.WriteLine(md);
// After the train part, so the shard bench compares with the tokens/s just measured.
Training.Bench.ShardReadBench.Run(experiment, outDir, t.tokens_per_second);
return 0;

static double Median(List<double> values)
{
    var sorted = values.OrderBy(v => v).ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}

static double MatmulRate(int threads)
{
    var best = 0.0;
    foreach (var n in new[] { 512, 1024, 2048 })
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n);
        var b = randn(n, n);
        for (var i = 0; i < 2; i++) mm(a, b);
        var repeats = n >= 2048 ? 4 : 12;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < repeats; i++) mm(a, b);
        var seconds = clock.Elapsed.TotalSeconds;
        best = Math.Max(best, 2.0 * n * n * n * repeats / seconds);
    }
    return best;
}
