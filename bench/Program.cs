using System.Globalization;
using Training.Bench.Generation;

// `make bench`: each part measures against a reference from the same run and writes bench/results/.
string Arg(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
var outDir = Arg("--out", "bench/results");
var experiment = Arg("--experiment", "experiments/quickstart.yaml");
Directory.CreateDirectory(outDir);
// `--only PART[,PART...]` (allreduce, data-parallel, generation, train, vocab, shards, checkpoint, dashboard, distill,
// scheduling, recovery) runs those parts in this order; without it, all parts run.
string[] known = ["allreduce", "data-parallel", "generation", "train", "vocab", "shards", "checkpoint", "dashboard", "distill", "scheduling", "recovery"];
var parts = Arg("--only", "all").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
if (parts.FirstOrDefault(p => p != "all" && !known.Contains(p)) is { } unknown)
{
    Console.Error.WriteLine($"bench: --only {unknown} is not one of {string.Join(", ", known)}.");
    return 2;
}
var all = parts.Contains("all");
bool Runs(string part) => all || parts.Contains(part);
if (Runs("dashboard"))
    Training.Bench.DashboardBench.Run(outDir);
if (Runs("scheduling"))
    Training.Bench.SchedulingBench.Run(outDir, int.Parse(Arg("--sim-workers", "1000")), int.Parse(Arg("--sim-trials", "10000")),
        double.Parse(Arg("--sim-trial-seconds", "3"), CultureInfo.InvariantCulture));
if (Runs("recovery"))
    Training.Bench.RecoveryBench.Run(outDir);
if (Runs("allreduce"))
    Training.Bench.AllReduceBench.Run(outDir);
if (Runs("data-parallel"))
    Training.Bench.DataParallelBench.Run(experiment, outDir);
if (Runs("generation"))
    await GenerationBench.RunAndWriteAsync(outDir);
if (Runs("distill"))
    Training.Bench.DistillationBench.Run(outDir);
if (Runs("vocab"))
    Training.Bench.LargeVocabBench.Run(outDir);
if (Runs("checkpoint"))
    Training.Bench.CheckpointBench.Run(experiment, outDir);
if (parts.Contains("shards") && !Runs("train"))
{
    Training.Bench.ShardReadBench.Run(experiment, outDir);
    return 0;
}
if (!Runs("train"))
    return 0;

var train = Training.Bench.TrainThroughputBench.Run(experiment, outDir);
// After the train part, so the shard bench compares with the tokens/s just measured.
Training.Bench.ShardReadBench.Run(experiment, outDir, train.TokensPerSecond);
return 0;
