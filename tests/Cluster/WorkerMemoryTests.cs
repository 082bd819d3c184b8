using System.Globalization;
using NUnit.Framework;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>
/// One real worker process runs trial after trial (a served cluster on loopback, one submit per trial); its resident
/// memory after each trial must stop growing once the first trial has loaded the libraries and warmed the allocator.
/// </summary>
[Category("Cluster")]
public class WorkerMemoryTests
{
    private const int Trials = 6;
    private const long AllowedGrowthBytes = 150L << 20;

    [Test]
    public async Task Worker_SeveralTrialsInOneProcess_ResidentMemoryStaysFlat()
    {
        using var dir = new TempDirectory();
        TestCorpus.Write(dir.Path);
        await using var cluster = await ServedCluster.StartAsync(dir.Combine("runs"));
        var worker = await cluster.AddWorkerAsync();

        var resident = new List<long>();
        for (var trial = 0; trial < Trials; trial++)
        {
            var path = dir.Combine($"memory{trial}.yaml");
            File.WriteAllText(path, Experiment($"memory{trial}"));
            var submit = await CliProcess.RunAsync(dir.Path, "submit", path, "--cluster", cluster.Api);
            Assert.That(submit.ExitCode, Is.EqualTo(0), submit.Output + worker.Output);
            // The rank releases the trial's memory after reporting it finished; sample once it says it has.
            await worker.WaitForAsync($"trial memory{trial}-t000 rank 0 generation 1 done", TimeSpan.FromMinutes(1));
            resident.Add(ResidentBytes(worker.Pid));
        }

        var megabytes = string.Join(", ", resident.Select(r => (r >> 20).ToString(CultureInfo.InvariantCulture)));
        TestContext.Out.WriteLine($"worker resident memory after each trial (MB): {megabytes}");
        Assert.That(resident[^1] - resident[1], Is.LessThan(AllowedGrowthBytes),
            $"worker resident memory after each trial (MB): {megabytes}");
    }

    // Big enough that a trial's tensors, activations and parquet buffers are tens of MB, so anything kept from one
    // trial to the next shows; short enough (a few steps, one eval, one checkpoint) for 2 cores.
    private static string Experiment(string name) => $"""
        name: {name}
        seed: 3
        data:
          train: train
          eval: eval
        tokenizer:
          kind: byte
          sentinels: 20
        model:
          arch: encoder-decoder
          d_model: 256
          encoder_layers: 2
          decoder_layers: 1
          heads: 4
          kv_heads: 2
          head_dim: 64
          ffn_dim: 1024
        objective:
          kind: span-corruption
          input_length: 128
        optimizer:
          lr: 1.0e-3
        train:
          steps: 4
          global_batch: 16
          micro_batch: 16
          eval_every: 2
          eval_batches: 2
          checkpoint_every: 2
          keep_checkpoints: 1
          log_every: 1
        resources:
          workers: 1
          threads: 1
        """;

    private static long ResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/{pid}/status has no VmRSS line");
    }
}
