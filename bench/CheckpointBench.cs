using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Training.Bench.Support;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// Checkpoints on a real Azurite (started here, in memory), each number against its reference from the same run:
/// (a) how long the training loop is blocked per checkpoint against the whole checkpoint (snapshot to commit) while
/// training goes on, goal at most 5%; (b) upload MB/s to Azurite against writing the same bytes to local disk
/// (LocalFolderBlobStore, flushed to disk), interleaved A B A B, median of the per-round ratios.
/// </summary>
public static class CheckpointBench
{
    private const int Checkpoints = 8;
    private const int UploadRounds = 5;

    public static void Run(string experiment, string outDir)
    {
        var work = Path.Combine(Path.GetTempPath(), "bench-ckpt-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            using var azurite = AzuriteProcess.Start(work);
            Func<string, string?> environment = name =>
                name == "TRAINING_STORAGE_DEVSTOREACCOUNT1_CONNECTION_STRING" ? azurite.ConnectionString : null;
            var root = $"azure://{AzuriteProcess.Account}/bench{Guid.NewGuid().ToString("N")[..8]}";
            var blocking = TorchThread.Run("bench-checkpoint", () => Blocking(experiment, BlobStores.Open($"{root}/checkpoints", environment)))
                .GetAwaiter().GetResult();
            var upload = UploadVsDisk(BlobStores.Open($"{root}/upload", environment), new LocalFolderBlobStore(Path.Combine(work, "disk")),
                blocking.CheckpointBytes);
            Write(outDir, experiment, blocking, upload);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private sealed record BlockingResult(long Parameters, long CheckpointBytes, double StepSeconds, List<double> Blocked, List<double> Total, List<int> StepsDuringUpload);

    private sealed record UploadResult(long Bytes, Interleaved Rounds)
    {
        public IReadOnlyList<double> DiskMBps => Rounds.Reference;
        public IReadOnlyList<double> AzuriteMBps => Rounds.Subject;
    }

    // Trains, checkpoints into Azurite, and keeps training until the commit lands, as the real loop does.
    private static BlockingResult Blocking(string experiment, IBlobStore store)
    {
        var spec = ExperimentLoader.Load(experiment);
        var trial = TrialComponents.Expand(spec)[0];
        using var trainer = new Trainer(new TrainerOptions(trial, store, "trials/bench/checkpoints", _ => { }));
        var committed = new ConcurrentDictionary<long, long>();
        var writer = trainer.CreateCheckpointWriter(m => committed[m.Step] = Stopwatch.GetTimestamp());
        for (var i = 0; i < 3; i++) trainer.TrainStep();
        // One untimed checkpoint, so JIT compilation and the container's creation are not measured.
        trainer.SaveCheckpoint(writer);
        writer.Flush();
        var steps = new List<double>();
        for (var i = 0; i < 4; i++) steps.Add(trainer.TrainStep().StepSeconds);
        var blocked = new List<double>();
        var total = new List<double>();
        var during = new List<int>();
        var step = 0L;
        for (var k = 0; k < Checkpoints; k++)
        {
            trainer.TrainStep();
            step = trainer.Step;
            var started = Stopwatch.GetTimestamp();
            blocked.Add(trainer.SaveCheckpoint(writer).TotalSeconds);
            var trained = 0;
            while (!committed.ContainsKey(step))
            {
                trainer.TrainStep();
                trained++;
            }
            total.Add(Stopwatch.GetElapsedTime(started, committed[step]).TotalSeconds);
            during.Add(trained);
        }
        writer.Flush();
        var last = store.ListAsync($"trials/bench/checkpoints/{CheckpointStore.IdFor(step)}/").GetAwaiter().GetResult();
        var bytes = last.Where(p => !p.EndsWith(CheckpointStore.ManifestName, StringComparison.Ordinal))
            .Sum(p => store.GetPropertiesAsync(p).GetAwaiter().GetResult()!.Size);
        return new BlockingResult(trainer.ParameterCount, bytes, Stats.Median(steps), blocked, total, during);
    }

    private static UploadResult UploadVsDisk(IBlobStore azurite, IBlobStore disk, long size)
    {
        var bytes = new byte[Math.Max(size, 8L << 20)];
        new Random(7).NextBytes(bytes);
        azurite.PutAsync("warmup", bytes).GetAwaiter().GetResult();
        disk.PutAsync("warmup", bytes).GetAwaiter().GetResult();
        var round = 0;
        // Disk (reference) then Azurite (subject) in each round: the per-round ratio sees the same machine on both sides.
        var rounds = Interleaved.Measure(UploadRounds, () => MBps(disk, $"round-{round}", bytes), () => MBps(azurite, $"round-{round++}", bytes), warmup: 0);
        return new UploadResult(bytes.Length, rounds);
    }

    private static double MBps(IBlobStore store, string path, byte[] bytes)
    {
        var clock = Stopwatch.StartNew();
        store.PutAsync(path, bytes).GetAwaiter().GetResult();
        var seconds = clock.Elapsed.TotalSeconds;
        store.DeleteAsync(path).GetAwaiter().GetResult();
        return bytes.Length / 1e6 / seconds;
    }

    private static void Write(string outDir, string experiment, BlockingResult c, UploadResult u)
    {
        var ratios = c.Blocked.Zip(c.Total, (x, y) => x / y).ToList();
        var blockedShare = Stats.Median(ratios);
        var uploadRatio = u.Rounds.MedianRatio;
        var result = new
        {
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            store = "Azurite 3.37 (in memory) on 127.0.0.1, through AzureBlobStore (4 MiB blocks, 4 in parallel)",
            checkpoint = new
            {
                experiment = ResultFiles.Relative(experiment),
                parameters = c.Parameters,
                bytes = c.CheckpointBytes,
                checkpoints = Checkpoints,
                median_step_seconds = c.StepSeconds,
                blocked_seconds = c.Blocked,
                snapshot_to_commit_seconds = c.Total,
                steps_trained_during_upload = c.StepsDuringUpload,
                median_blocked_seconds = Stats.Median(c.Blocked),
                median_snapshot_to_commit_seconds = Stats.Median(c.Total),
                median_blocked_share = blockedShare,
                goal_blocked_share_at_most = 0.05,
                meets_goal = blockedShare <= 0.05,
            },
            upload = new
            {
                bytes = u.Bytes,
                rounds = UploadRounds,
                median_azurite_mb_per_second = Stats.Median(u.AzuriteMBps),
                median_disk_mb_per_second = Stats.Median(u.DiskMBps),
                azurite_vs_disk = u.Rounds.ToJson("interleaved: disk, Azurite, disk, Azurite, ... (ratio = Azurite MB/s / disk MB/s of the round)"),
            },
        };
        ResultFiles.WriteJson(outDir, "checkpoint-storage.json", result);
        var md = new StringBuilder()
            .AppendLine("# Checkpoints on Azure Blob Storage (Azurite)")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture,
                $"{result.store}; {Environment.ProcessorCount} cores. Model of `{result.checkpoint.experiment}`: {c.Parameters:N0} parameters, checkpoint {c.CheckpointBytes / 1e6:F1} MB (model + optimizer + state), median step {c.StepSeconds * 1000:F0} ms.")
            .AppendLine()
            .AppendLine("## Training loop blocked per checkpoint")
            .AppendLine()
            .AppendLine("Blocked = the copy to host memory on the trainer thread (serialization, SHA-256 and upload run on the upload thread); snapshot to commit = until the manifest and `latest` are written, with training going on meanwhile.")
            .AppendLine()
            .AppendLine("| measure | median | all |")
            .AppendLine("|---|---|---|")
            .AppendLine(CultureInfo.InvariantCulture, $"| loop blocked | {Stats.Median(c.Blocked) * 1000:F0} ms | {string.Join(", ", c.Blocked.Select(v => (v * 1000).ToString("F0", CultureInfo.InvariantCulture)))} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| snapshot to commit (reference) | {Stats.Median(c.Total) * 1000:F0} ms | {string.Join(", ", c.Total.Select(v => (v * 1000).ToString("F0", CultureInfo.InvariantCulture)))} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| steps trained during the upload | {Stats.Median(c.StepsDuringUpload.Select(v => (double)v).ToList()):F0} | {string.Join(", ", c.StepsDuringUpload)} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| **blocked / snapshot to commit** | **{blockedShare:P1}** (goal at most 5%: {(blockedShare <= 0.05 ? "met" : "not met")}) | {string.Join(", ", ratios.Select(r => r.ToString("P1", CultureInfo.InvariantCulture)))} |")
            .AppendLine()
            .AppendLine("## Upload throughput against local disk")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"The same {u.Bytes / 1e6:F1} MB, {UploadRounds} rounds interleaved (disk, Azurite, disk, Azurite, ...); load average (1/5/15 min) {u.Rounds.LoadAtStart} at the start, {u.Rounds.LoadAtEnd} at the end; disk = LocalFolderBlobStore (temporary file, flushed to disk, renamed).")
            .AppendLine()
            .AppendLine("| target | median MB/s | all rounds |")
            .AppendLine("|---|---|---|")
            .AppendLine(CultureInfo.InvariantCulture, $"| Azurite (AzureBlobStore) | {Stats.Median(u.AzuriteMBps):F0} | {string.Join(", ", u.AzuriteMBps.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| local disk (reference) | {Stats.Median(u.DiskMBps):F0} | {string.Join(", ", u.DiskMBps.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| **median of per-round ratios Azurite / disk** | **{(u.Rounds.Stable ? uploadRatio.ToString("F2", CultureInfo.InvariantCulture) + "x" : "no headline")}** | {string.Join(", ", u.Rounds.Ratios.Select(v => v.ToString("F2", CultureInfo.InvariantCulture)))}; {u.Rounds.Detail(v => v.ToString("F2", CultureInfo.InvariantCulture) + "x")} |")
            .ToString();
        ResultFiles.WriteText(outDir, "checkpoint-storage.md", md);
        Console.WriteLine(md);
    }
}
