using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Collectives;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// Data-parallel training of the quickstart model: 1 rank with all the machine's threads against 2 ranks (one thread
/// each) joined by the TCP ring, same global batch. Reports the time per step spent in the gradient all-reduce.
/// </summary>
public static class DataParallelBench
{
    private const int Warmup = 2, Measured = 8;

    public static void Run(string experiment, string outDir)
    {
        var spec = ExperimentLoader.Load(experiment);
        var trial = TrialComponents.Expand(spec)[0];
        var cores = Environment.ProcessorCount;
        var single = Measure(trial, worldSize: 1, threadsPerRank: cores);
        var pair = Measure(trial, worldSize: 2, threadsPerRank: Math.Max(1, cores / 2));
        var parameters = single.Parameters;
        var result = new
        {
            experiment = ResultFiles.Relative(experiment),
            parameters,
            gradient_bytes = parameters * 4,
            global_batch = trial.Spec.Train.GlobalBatch,
            one_rank = single,
            two_ranks = pair,
            communication_fraction_at_two = pair.MedianCommunicationSeconds / pair.MedianStepSeconds,
            speedup_two_vs_one = single.MedianStepSeconds / pair.MedianStepSeconds,
        };
        ResultFiles.WriteJson(outDir, "data-parallel.json", result);
        var md = new StringBuilder()
            .AppendLine("# Data-parallel training step (quickstart model, TCP ring all-reduce on loopback)")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"{parameters:N0} parameters ({parameters * 4 / 1e6:F1} MB of float32 gradients per step), global batch {trial.Spec.Train.GlobalBatch}, {cores} cores.")
            .AppendLine()
            .AppendLine("| ranks | threads/rank | median step | of which all-reduce | communication share | tokens/s |")
            .AppendLine("|---|---|---|---|---|---|");
        foreach (var r in new[] { single, pair })
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Ranks} | {r.ThreadsPerRank} | {r.MedianStepSeconds * 1000:F0} ms | {r.MedianCommunicationSeconds * 1000:F1} ms | {r.MedianCommunicationSeconds / r.MedianStepSeconds:P1} | {r.TokensPerSecond:N0} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"Two ranks on the same {cores} cores split the compute, so their speed-up is bounded by the cores, not the ring: {result.speedup_two_vs_one:F2}x.");
        ResultFiles.WriteText(outDir, "data-parallel.md", md.ToString());
        Console.WriteLine(md);
    }

    public sealed record RankTiming(int Ranks, int ThreadsPerRank, long Parameters, double MedianStepSeconds, double MedianCommunicationSeconds, double TokensPerSecond);

    private static RankTiming Measure(Trial trial, int worldSize, int threadsPerRank)
    {
        // Both runs use half the global batch per micro-batch: one rank accumulates two, two ranks take one each.
        var spec = trial.Spec with
        {
            Resources = trial.Spec.Resources with { Threads = threadsPerRank, Workers = worldSize },
            Train = trial.Spec.Train with { MicroBatch = trial.Spec.Train.GlobalBatch / 2 },
        };
        var rankTrial = trial with { Spec = spec };
        var scratch = Path.Combine(Path.GetTempPath(), "bench-dp-" + Guid.NewGuid().ToString("N")[..8]);
        var listeners = Enumerable.Range(0, worldSize).Select(_ => RingListener.Start()).ToList();
        var endpoints = listeners.Select(l => l.Endpoint).ToList();
        try
        {
            var ranks = Enumerable.Range(0, worldSize).Select(rank => TorchThread.Run($"bench-rank-{rank}", () =>
            {
                using var group = worldSize == 1 ? null : TcpRing.Connect(listeners[rank], rank, endpoints, "bench/g1", TimeSpan.FromSeconds(60));
                using var trainer = new Trainer(new TrainerOptions(rankTrial, new LocalFolderBlobStore(scratch), $"rank{rank}", _ => { }, Collective: group));
                var steps = new List<StepMetrics>();
                for (var i = 0; i < Warmup + Measured; i++)
                {
                    var m = trainer.TrainStep(stopWanted: false).Metrics;
                    if (i >= Warmup) steps.Add(m);
                }
                return (steps, trainer.ParameterCount);
            })).ToList();
            var results = Task.WhenAll(ranks).GetAwaiter().GetResult();
            var leader = results[0].steps;
            return new RankTiming(worldSize, threadsPerRank, results[0].ParameterCount,
                Median(leader.Select(m => m.StepSeconds)), Median(leader.Select(m => m.CommunicationSeconds)), Median(leader.Select(m => m.TokensPerSecond)));
        }
        finally
        {
            foreach (var l in listeners) l.Dispose();
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
