using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Training.Orchestrator.State;

namespace Training.Bench;

/// <summary>
/// Recovery in seconds, with real processes on loopback: `orchestrator serve` and three `worker` processes run a 2-way
/// data-parallel trial; a worker of the trial is killed with -9, and later `serve` itself is killed with -9 and started
/// again on the same ports and run-state store. Each time, the seconds from the kill to the trial's next completed
/// step (its time in the run-state store). Goal: at most 15 s (NCCL's default collective timeout is 30 minutes).
/// </summary>
public static class RecoveryBench
{
    private const string Secret = "bench-recovery";

    public static void Run(string outDir)
    {
        var bin = Path.GetFullPath(Path.Combine("orchestrator", "bin", "Release", "net10.0"));
        if (!File.Exists(Path.Combine(bin, "orchestrator.dll")) || !File.Exists(Path.Combine(bin, "worker.dll")))
            throw new FileNotFoundException($"recovery bench: the orchestrator and worker programs are missing from {bin}; run 'make build' first");
        var scratch = Path.Combine(Path.GetTempPath(), "bench-recovery-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(scratch);
        var processes = new List<Child>();
        try
        {
            var runs = Path.Combine(scratch, "runs");
            var experiment = Path.Combine(scratch, "recovery.yaml");
            File.WriteAllText(experiment, Experiment());
            var serve = Serve(bin, runs, "0", "0");
            processes.Add(serve);
            var found = serve.WaitFor(@"cluster seed (\S+), API http://(\S+),", TimeSpan.FromSeconds(60));
            var (seed, api) = (found.Groups[1].Value, found.Groups[2].Value);
            serve.WaitFor("submit with:", TimeSpan.FromSeconds(10));
            var workers = Enumerable.Range(0, 3).Select(_ => new Child(bin, "worker.dll", ["--seed", seed, "--threads", "1"])).ToList();
            processes.AddRange(workers);
            foreach (var worker in workers) worker.WaitFor("joined", TimeSpan.FromSeconds(60));
            var submit = new Child(bin, "orchestrator.dll", ["submit", experiment, "--cluster", api, "--token-file", Path.Combine(runs, ".api-token")]);
            processes.Add(submit);

            using var store = new RunStore(runs);
            WaitForEvent(store, "checkpoint", after: DateTimeOffset.MinValue, TimeSpan.FromMinutes(3));
            var victim = workers.First(w => w.Output.Contains("trial recovery-t000"));
            var workerKilled = DateTimeOffset.UtcNow;
            victim.Kill();
            var workerRecovery = NextStepAfterRestart(store, workerKilled);
            Console.WriteLine($"recovery bench: worker killed -> next completed step {workerRecovery:F1} s");

            WaitForEvent(store, "checkpoint", after: DateTimeOffset.UtcNow, TimeSpan.FromMinutes(3));
            var serveKilled = DateTimeOffset.UtcNow;
            serve.Kill();
            serve.WaitForExit();
            var restarted = Serve(bin, runs, seed.Split(':')[^1], api.Split(':')[^1]);
            processes.Add(restarted);
            var serveRecovery = NextStepAfterRestart(store, serveKilled);
            Console.WriteLine($"recovery bench: serve killed -> next completed step {serveRecovery:F1} s");

            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                what = "serve + 3 workers on 127.0.0.1, a 2-way data-parallel trial (quickstart model, 1 thread a rank, a checkpoint every 20 steps); seconds from kill -9 to the trial's next completed step in the run-state store",
                worker_kill_to_next_step_seconds = workerRecovery,
                serve_kill_to_next_step_seconds = serveRecovery,
                goal_seconds = 15,
                reference = "NCCL's default collective timeout: 1800 s",
            };
            File.WriteAllText(Path.Combine(outDir, "recovery.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            var md = new StringBuilder()
                .AppendLine("# Recovery: kill -9 to the next completed step")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"Machine: {result.machine.cores} cores. Measured: {result.what}.")
                .AppendLine()
                .AppendLine("| kill -9 of | to the next completed step | goal |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| a worker of the trial (the trial restarts on the spare worker from its checkpoint) | **{workerRecovery:F1} s** | <= 15 s |")
                .AppendLine(CultureInfo.InvariantCulture, $"| `orchestrator serve` (started again at once; the workers rejoin, the trial continues from its checkpoint) | **{serveRecovery:F1} s** | <= 15 s |")
                .ToString();
            File.WriteAllText(Path.Combine(outDir, "recovery.md"), md);
            Console.WriteLine(md);
        }
        finally
        {
            foreach (var process in processes) process.Kill();
            foreach (var process in processes) process.WaitForExit();
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    private static Child Serve(string bin, string runs, string port, string httpPort) =>
        new(bin, "orchestrator.dll", ["serve", "--port", port, "--http-port", httpPort, "--runs", runs, "--data-root", Path.GetFullPath("data")]);

    /// <summary>The quickstart model as a 2-way trial long enough to be killed twice, with frequent checkpoints.</summary>
    private static string Experiment() =>
        File.ReadAllText(Path.Combine("experiments", "quickstart.yaml"))
            .Replace("name: quickstart", "name: recovery")
            .Replace("../data/sample", Path.GetFullPath(Path.Combine("data", "sample")))
            .Replace("  steps: 240", "  steps: 100000")
            .Replace("  eval_every: 80", "  eval_every: 100000")
            .Replace("  checkpoint_every: 80", "  checkpoint_every: 20")
            .Replace("  log_every: 10", "  log_every: 1")
            .Replace("  global_batch: 16\n  micro_batch: 16", "  global_batch: 8\n  micro_batch: 4")
            .Replace("resources:\n  workers: 1\n  threads: 2", "resources:\n  workers: 2\n  threads: 1");

    private static IEnumerable<StoredEvent> Events(RunStore store) =>
        store.List().SelectMany(r => r.Trials).SelectMany(t => t.Events());

    private static StoredEvent WaitForEvent(RunStore store, string type, DateTimeOffset after, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Events(store).FirstOrDefault(e => e.Type == type && e.Time > after) is { } found) return found;
            Thread.Sleep(100);
        }
        throw new TimeoutException($"recovery bench: no {type} event after {after:O} within {timeout}");
    }

    /// <summary>Seconds from <paramref name="killed"/> to the first step recorded after the trial's next start.</summary>
    private static double NextStepAfterRestart(RunStore store, DateTimeOffset killed)
    {
        var started = WaitForEvent(store, "start", killed, TimeSpan.FromMinutes(2));
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (DateTime.UtcNow < deadline)
        {
            if (Events(store).FirstOrDefault(e => e.Type == "step" && e.Sequence > started.Sequence) is { } step)
                return (step.Time - killed).TotalSeconds;
            Thread.Sleep(100);
        }
        throw new TimeoutException("recovery bench: the trial started again but completed no step within a minute");
    }

    /// <summary>A program of the build, its output collected so the bench can wait for a line.</summary>
    private sealed class Child
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        public Child(string bin, string program, IReadOnlyList<string> args)
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(Path.Combine(bin, program));
            foreach (var a in args) info.ArgumentList.Add(a);
            info.Environment["TRAINING_CLUSTER_SECRET"] = Secret;
            _process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {program}");
            _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public string Output { get { lock (_output) return _output.ToString(); } }

        public Match WaitFor(string pattern, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                if (Regex.Match(Output, pattern) is { Success: true } match) return match;
                Thread.Sleep(100);
            }
            return Regex.Match(Output, pattern) is { Success: true } last ? last
                : throw new TimeoutException($"recovery bench: no output matching /{pattern}/ within {timeout}:\n{Output}");
        }

        public void Kill()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: false);
        }

        public void WaitForExit() => _process.WaitForExit(10_000);
    }
}
