using System.Diagnostics;
using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Data;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// How fast the data path delivers training windows when shards are read by range from Azure Blob Storage (a real
/// Azurite started here, on loopback: the HTTP stack, block cache and parquet decoding, not a WAN), against the same
/// shards read from local files, and against the tokens per second the trainer consumes, measured in the same run
/// (goal: the blob path at least 10x the trainer). Cold: the first epoch, every byte fetched by ranged GETs; warm:
/// the second, from the cache.
/// </summary>
public static class ShardReadBench
{
    /// <param name="trainerTokensPerSecond">The trainer's rate measured earlier in this run; measured here when null.</param>
    public static void Run(string experiment, string outDir, double? trainerTokensPerSecond = null)
    {
        var spec = ExperimentLoader.Load(experiment);
        var files = TrialComponents.TrainShards(spec).Select(s => s.Name).ToList();
        var tokenizer = TrialComponents.Tokenizer(spec);
        var window = TrialComponents.Objective(spec, tokenizer).WindowLength;
        var scratch = Path.Combine(Path.GetTempPath(), "bench-shards-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(scratch);
        try
        {
            var trainer = trainerTokensPerSecond ?? TrainerTokensPerSecond(experiment);
            using var azurite = AzuriteProcess.Start(scratch);
            var store = BlobStores.Open($"azure://{AzuriteProcess.Account}/shards{Guid.NewGuid().ToString("N")[..8]}",
                name => name == "TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING" ? azurite.ConnectionString : null);
            var blobs = new List<string>();
            foreach (var file in files)
            {
                var blob = $"shards/{Path.GetFileName(file)}";
                store.PutAsync(blob, File.ReadAllBytes(file)).GetAwaiter().GetResult();
                blobs.Add(blob);
            }

            var bytes = files.Sum(f => new FileInfo(f).Length);
            // One untimed pass first, so neither measured source pays for JIT compilation.
            Epochs(new PackedExampleStream(files, tokenizer, window, spec.Seed, shuffle: true));
            var local = Epochs(new PackedExampleStream(files, tokenizer, window, spec.Seed, shuffle: true));
            var cache = new ShardBlockCache(256L << 20);
            var remote = Epochs(new PackedExampleStream(BlobShardSource.For(store, blobs, cache), tokenizer, window, spec.Seed, shuffle: true));
            var statistics = cache.Statistics;

            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                data = new { shards = files.Count, bytes, window_tokens = window, tokenizer = tokenizer.Name, block_bytes = cache.BlockSize },
                local_files = new { cold_tokens_per_second = local.Cold, warm_tokens_per_second = local.Warm },
                blob_store = new
                {
                    store = "Azurite 3.37 (in memory) on 127.0.0.1 through AzureBlobStore ranged GETs",
                    cold_tokens_per_second = remote.Cold,
                    warm_tokens_per_second = remote.Warm,
                    range_requests = statistics.Requests,
                    bytes_fetched = statistics.BytesFetched,
                    cache_hits = statistics.Hits,
                    stalls = statistics.Stalls,
                },
                trainer_tokens_per_second = trainer,
                trainer_measured = trainerTokensPerSecond is null ? "in this part, 8 steps after 3 warm-up" : "by the train part of this run",
                cold_ratio_to_trainer = remote.Cold / trainer,
                warm_ratio_to_trainer = remote.Warm / trainer,
                goal_ratio_at_least = 10,
                meets_goal = remote.Cold / trainer >= 10,
            };
            ResultFiles.WriteJson(outDir, "shard-read.json", result);
            var md = new StringBuilder()
                .AppendLine("# Shard read throughput")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture,
                    $"{files.Count} shard(s), {bytes:N0} bytes, windows of {window} tokens ({tokenizer.Name} tokenizer), {cache.BlockSize >> 20} MiB blocks, {Environment.ProcessorCount} cores. Tokens/s of packed windows (parquet decode + tokenize + pack). Cold = first epoch, warm = second.")
                .AppendLine()
                .AppendLine("| source | cold tokens/s | warm tokens/s |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| local files | {local.Cold:N0} | {local.Warm:N0} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| Azurite (AzureBlobStore, ranged GETs) | {remote.Cold:N0} | {remote.Warm:N0} |")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture,
                    $"Blob reads: {statistics.Requests:N0} requests (ranged GETs and ETag checks), {statistics.BytesFetched:N0} bytes fetched, {statistics.Hits:N0} cache hits, {statistics.Stalls:N0} foreground fetches.")
                .AppendLine()
                .AppendLine(FormattableString.Invariant(
                    $"Trainer consumes {trainer:N0} tokens/s (measured {(trainerTokensPerSecond is null ? "in this part" : "by the train part of this run")}): the Azurite data path delivers **{remote.Cold / trainer:N0}x** that cold and **{remote.Warm / trainer:N0}x** warm (goal at least 10x: {(remote.Cold / trainer >= 10 ? "met" : "not met")})."))
                .ToString();
            ResultFiles.WriteText(outDir, "shard-read.md", md);
            Console.WriteLine(md);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The trainer's tokens per second on the experiment's first trial: 8 steps after 3 warm-up steps.</summary>
    public static double TrainerTokensPerSecond(string experiment) => TorchThread.Run("bench-trainer-rate", () =>
    {
        var spec = ExperimentLoader.Load(experiment);
        var trial = TrialComponents.Expand(spec)[0];
        var scratch = Path.Combine(Path.GetTempPath(), "bench-rate-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var trainer = new Trainer(new TrainerOptions(trial, new LocalFolderBlobStore(scratch), "checkpoints", _ => { }));
            for (var i = 0; i < 3; i++) trainer.TrainStep();
            double tokens = 0, seconds = 0;
            for (var i = 0; i < 8; i++)
            {
                var m = trainer.TrainStep();
                tokens += m.TokensPerSecond * m.StepSeconds;
                seconds += m.StepSeconds;
            }
            return tokens / seconds;
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }).GetAwaiter().GetResult();

    // Tokens per second over the first epoch and over the second (the stream is disposed here).
    private static (double Cold, double Warm) Epochs(PackedExampleStream stream)
    {
        using (stream)
        {
            double Epoch()
            {
                var epoch = stream.Cursor.Epoch;
                var clock = Stopwatch.StartNew();
                long windows = 0;
                while (stream.Cursor.Epoch == epoch)
                {
                    stream.Next();
                    windows++;
                }

                return windows * (double)stream.WindowLength / clock.Elapsed.TotalSeconds;
            }

            return (Epoch(), Epoch());
        }
    }
}
