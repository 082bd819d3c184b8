using System.Diagnostics;
using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;
using static TorchSharp.torch;

namespace Training.Bench;

/// <summary>
/// Training MFU against this machine's own float32 matmul rate, the two alternating (matmul, training steps, matmul,
/// ...) so that a change in the machine's load lands on both sides of a pair; the headline is the median of the per-pair
/// ratios. The same run samples the process's resident memory at its start, middle and end: a long run must stay flat.
/// </summary>
public static class TrainThroughputBench
{
    private const int WarmupSteps = 3;
    private const int Pairs = 12;
    private const int StepsPerPair = 5;
    private const double MatmulSeconds = 1.0;
    private static readonly int[] MatmulSizes = [512, 1024, 2048];

    public sealed record Result(double TokensPerSecond);

    public static Result Run(string experiment, string outDir) =>
        TorchThread.Run("bench-train", () => Measure(experiment, outDir)).GetAwaiter().GetResult();

    private static Result Measure(string experiment, string outDir)
    {
        var spec = ExperimentLoader.Load(experiment);
        var trial = TrialComponents.Expand(spec)[0];
        var threads = trial.Spec.Resources.Threads;
        set_num_threads(threads);
        // The size that runs fastest here is the reference for every pair (one calibration pass, not timed in pairs).
        var calibration = MatmulSizes.ToDictionary(n => n, n => MatmulGflops(n, seconds: 0.3));
        var size = calibration.MaxBy(kv => kv.Value).Key;

        var scratch = Path.Combine(Path.GetTempPath(), "bench-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(scratch), "checkpoints", _ => { }));
            var config = trainer.Model.Config;
            var o = trial.Spec.Objective;
            var corrupted = o.Kind == ObjectiveKind.SpanCorruption ? SpanCorruption.ComputeLengths(o.InputLength, o.NoiseDensity, o.MeanSpanLength) : null;
            var (encoderLength, decoderLength) = corrupted is null ? (0, o.InputLength) : (corrupted.InputLength, corrupted.TargetLength);
            var flopsPerToken = ParameterCount.TrainingFlopsPerToken(config, encoderLength, decoderLength);

            for (var i = 0; i < WarmupSteps; i++) trainer.TrainStep();
            var stepSeconds = new List<double>();
            var tokensPerSecond = new List<double>();
            // Model FLOP/s over one pair's steps, wall clock (data, forward, backward, optimizer: all a step costs).
            double Training()
            {
                var tokens = 0.0;
                var clock = Stopwatch.StartNew();
                for (var s = 0; s < StepsPerPair; s++)
                {
                    var m = trainer.TrainStep();
                    stepSeconds.Add(m.StepSeconds);
                    tokens += m.TokensPerSecond * m.StepSeconds;
                }
                var seconds = clock.Elapsed.TotalSeconds;
                tokensPerSecond.Add(tokens / seconds);
                return tokens * flopsPerToken / seconds / 1e9;
            }

            var memory = new List<(string When, long Step, long Bytes)> { ("start", trainer.Step, ResidentMemory.Bytes()) };
            // About a second of matmuls, near the length of a pair's training steps: both sides then sample the load alike.
            var pairs = Interleaved.Measure(Pairs, () => MatmulGflops(size, MatmulSeconds), Training, warmup: 0, afterPair: i =>
            {
                if (i == Pairs / 2 - 1) memory.Add(("middle", trainer.Step, ResidentMemory.Bytes()));
                if (i == Pairs - 1) memory.Add(("end", trainer.Step, ResidentMemory.Bytes()));
            });

            var (start, middle, end) = (memory[0], memory[1], memory[2]);
            // Flat: the second half of the run (allocator pools and caches have filled by then) grows by under 5%.
            var secondHalfGrowth = (double)(end.Bytes - middle.Bytes) / middle.Bytes;
            var parameters = ParameterCount.Count((TorchSharp.torch.nn.Module)trainer.Model);
            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, threads, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                reference = new
                {
                    what = $"float32 square matmul (torch.mm) of size {size} repeated for {MatmulSeconds:F1} s, the fastest of sizes {string.Join("/", MatmulSizes)} in a calibration pass",
                    calibration_gflops = calibration.ToDictionary(kv => kv.Key.ToString(CultureInfo.InvariantCulture), kv => kv.Value),
                    median_matmul_gflops = Stats.Median(pairs.Reference),
                },
                training = new
                {
                    experiment = ResultFiles.Relative(experiment),
                    arch = trial.Spec.Model.Architecture.ToString(),
                    parameters,
                    encoder_tokens = encoderLength,
                    decoder_tokens = decoderLength,
                    global_batch = trial.Spec.Train.GlobalBatch,
                    warmup_steps = WarmupSteps,
                    steps_measured = stepSeconds.Count,
                    steps_per_pair = StepsPerPair,
                    median_step_seconds = Stats.Median(stepSeconds),
                    median_tokens_per_second = Stats.Median(tokensPerSecond),
                    training_flops_per_token = flopsPerToken,
                    median_model_gflops = Stats.Median(pairs.Subject),
                },
                mfu_vs_matmul = pairs.ToJson("interleaved: matmul, training steps, matmul, training steps, ... (ratio = model FLOP/s / matmul FLOP/s of the pair)"),
                memory = new
                {
                    what = "resident set of the bench process (VmRSS), after the warm-up steps, after half the pairs, after the last",
                    samples = memory.Select(m => new { when = m.When, step = m.Step, rss_bytes = m.Bytes }),
                    second_half_growth = secondHalfGrowth,
                    flat_limit = 0.05,
                    flat = secondHalfGrowth <= 0.05,
                },
            };
            ResultFiles.WriteJson(outDir, "train-throughput.json", result);

            static string Percent(double v) => (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%";
            static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F0", CultureInfo.InvariantCulture) + " MiB";
            var md = new StringBuilder()
                .AppendLine("# Training throughput")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {threads} torch threads; load average (1/5/15 min) {pairs.LoadAtStart} at the start, {pairs.LoadAtEnd} at the end.")
                .AppendLine(CultureInfo.InvariantCulture, $"Model of `{result.training.experiment}`: {result.training.arch}, {parameters:N0} parameters, {encoderLength}+{decoderLength} tokens/example, batch {result.training.global_batch}.")
                .AppendLine(CultureInfo.InvariantCulture, $"Method: {Pairs} pairs, each {result.reference.what.Split(',')[0]}, then {StepsPerPair} training steps (after {WarmupSteps} warm-up steps); MFU of a pair = model FLOP/s / matmul FLOP/s.")
                .AppendLine()
                .AppendLine("| measure | median | range over the pairs |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| matmul rate (reference) | {Stats.Median(pairs.Reference):F1} GFLOP/s | {pairs.Reference.Min():F1}-{pairs.Reference.Max():F1} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| step | {Stats.Median(stepSeconds) * 1000:F0} ms | {stepSeconds.Min() * 1000:F0}-{stepSeconds.Max() * 1000:F0} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| training tokens/s | {Stats.Median(tokensPerSecond):N0} | {tokensPerSecond.Min():N0}-{tokensPerSecond.Max():N0} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| training FLOPs/token | {flopsPerToken / 1e6:F2} MFLOP | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| model FLOP/s | {Stats.Median(pairs.Subject):F1} GFLOP/s | {pairs.Subject.Min():F1}-{pairs.Subject.Max():F1} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| **MFU vs matmul rate (median of per-pair ratios)** | **{(pairs.Stable ? Percent(pairs.MedianRatio) : "no headline")}** | {pairs.Detail(Percent)} |")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"Resident memory: {Mib(start.Bytes)} at step {start.Step} (start), {Mib(middle.Bytes)} at step {middle.Step} (middle), {Mib(end.Bytes)} at step {end.Step} (end); second half {secondHalfGrowth:+0.0%;-0.0%} ({(result.memory.flat ? "flat" : "NOT flat")}, limit 5%).")
                .ToString();
            ResultFiles.WriteText(outDir, "train-throughput.md", md);
            Console.WriteLine(md);
            return new Result(Stats.Median(tokensPerSecond));
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>GFLOP/s of n x n float32 matmuls repeated for at least <paramref name="seconds"/>, after one untimed.</summary>
    private static double MatmulGflops(int n, double seconds)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n);
        var b = randn(n, n);
        mm(a, b).Dispose();
        var clock = Stopwatch.StartNew();
        var repeats = 0;
        // Each product freed at once: hundreds kept to the scope's end would move the memory samples.
        do
        {
            mm(a, b).Dispose();
            repeats++;
        }
        while (clock.Elapsed.TotalSeconds < seconds);
        return 2.0 * n * n * n * repeats / clock.Elapsed.TotalSeconds / 1e9;
    }
}
