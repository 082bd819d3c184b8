using System.Globalization;
using Training.Bench.Generation;

// `make bench`: each part measures against a reference from the same run and writes bench/results/.
string Arg(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;
var outDir = Arg("--out", "bench/results");
var experiment = Arg("--experiment", "experiments/quickstart.yaml");
Directory.CreateDirectory(outDir);
// `--only allreduce|data-parallel|generation|train|vocab|shards|checkpoint|dashboard|distill|scheduling|recovery` runs one part; without it, all parts run.
var only = Arg("--only", "all");
if (only is not ("all" or "allreduce" or "data-parallel" or "generation" or "train" or "vocab" or "shards" or "checkpoint" or "dashboard" or "distill"
    or "scheduling" or "recovery"))
{
    Console.Error.WriteLine($"bench: --only {only} is not one of allreduce, data-parallel, generation, train, vocab, shards, checkpoint, dashboard, distill, scheduling, recovery.");
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
if (only is "all" or "vocab")
    Training.Bench.LargeVocabBench.Run(outDir);
if (only is "all" or "checkpoint")
    Training.Bench.CheckpointBench.Run(experiment, outDir);
if (only is "shards")
{
    Training.Bench.ShardReadBench.Run(experiment, outDir);
    return 0;
}
if (only is not ("all" or "train"))
    return 0;

var train = Training.Bench.TrainThroughputBench.Run(experiment, outDir);
// After the train part, so the shard bench compares with the tokens/s just measured.
Training.Bench.ShardReadBench.Run(experiment, outDir, train.TokensPerSecond);
return 0;
