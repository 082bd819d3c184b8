using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Training.Shared.Data;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// How fast the data path delivers training windows when shards are read from a blob store by range (the local-folder
/// store, so this measures the range/block/cache machinery and parquet decoding, not a network), against the same
/// shards read from local files, and against the tokens per second the trainer consumes (from train-throughput.json
/// when the train part ran). Cold: the first epoch, every byte fetched by ranged GETs; warm: the second, from the cache.
/// </summary>
public static class ShardReadBench
{
    public static void Run(string experiment, string outDir)
    {
        var spec = ExperimentLoader.Load(experiment);
        var files = TrialComponents.TrainFiles(spec);
        var tokenizer = TrialComponents.Tokenizer(spec);
        var window = TrialComponents.Objective(spec, tokenizer).WindowLength;
        var scratch = Path.Combine(Path.GetTempPath(), "bench-shards-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var store = new LocalFolderBlobStore(scratch);
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
            double? trainer = null;
            var trainFile = Path.Combine(outDir, "train-throughput.json");
            if (File.Exists(trainFile))
                trainer = JsonDocument.Parse(File.ReadAllText(trainFile)).RootElement.GetProperty("training").GetProperty("tokens_per_second").GetDouble();

            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                data = new { shards = files.Count, bytes, window_tokens = window, tokenizer = tokenizer.Name, block_bytes = cache.BlockSize },
                local_files = new { cold_tokens_per_second = local.Cold, warm_tokens_per_second = local.Warm },
                blob_store = new
                {
                    store = "LocalFolderBlobStore through ranged reads (no network latency)",
                    cold_tokens_per_second = remote.Cold,
                    warm_tokens_per_second = remote.Warm,
                    range_requests = statistics.Requests,
                    bytes_fetched = statistics.BytesFetched,
                    cache_hits = statistics.Hits,
                    stalls = statistics.Stalls,
                },
                trainer_tokens_per_second = trainer,
                cold_ratio_to_trainer = trainer is { } t1 ? remote.Cold / t1 : (double?)null,
                warm_ratio_to_trainer = trainer is { } t2 ? remote.Warm / t2 : (double?)null,
            };
            File.WriteAllText(Path.Combine(outDir, "shard-read.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            var md = new StringBuilder()
                .AppendLine("# Shard read throughput")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture,
                    $"{files.Count} shard(s), {bytes:N0} bytes, windows of {window} tokens ({tokenizer.Name} tokenizer), {cache.BlockSize >> 20} MiB blocks, {Environment.ProcessorCount} cores. Tokens/s of packed windows (parquet decode + tokenize + pack). Cold = first epoch, warm = second.")
                .AppendLine()
                .AppendLine("| source | cold tokens/s | warm tokens/s |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| local files | {local.Cold:N0} | {local.Warm:N0} |")
                .AppendLine(CultureInfo.InvariantCulture, $"| blob store (local folder, ranged reads) | {remote.Cold:N0} | {remote.Warm:N0} |")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture,
                    $"Blob reads: {statistics.Requests:N0} requests (ranged GETs and ETag checks), {statistics.BytesFetched:N0} bytes fetched, {statistics.Hits:N0} cache hits, {statistics.Stalls:N0} foreground fetches.")
                .AppendLine()
                .AppendLine(trainer is { } t
                    ? FormattableString.Invariant(
                        $"Trainer consumes {t:N0} tokens/s (train-throughput.json): the blob data path delivers **{remote.Cold / t:N0}x** that cold and **{remote.Warm / t:N0}x** warm.")
                    : "No train-throughput.json in this folder: run the train part to get the ratio to the trainer's tokens/s.")
                .ToString();
            File.WriteAllText(Path.Combine(outDir, "shard-read.md"), md);
            Console.WriteLine(md);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

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
