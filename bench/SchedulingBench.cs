using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Training.Orchestrator.Scheduling;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Training;

namespace Training.Bench;

/// <summary>
/// The coordinator at scale: the real experiment manager and trial coordinators (in process, with the SQLite run-state
/// store) driving 1,000 simulated workers that follow the worker protocol (register, listen, report a start, finish
/// after a fixed time) through a sweep of 10,000 short trials. Reports the makespan against the ideal one (waves of
/// one trial per worker), the scheduling overhead, and the process's peak memory. Ray Tune's published figure for the
/// same shape: 10,000 trials in 715 s against 625 s ideal (14% overhead).
/// </summary>
public static class SchedulingBench
{
    public static void Run(string outDir, int workers = 1000, int trials = 10_000, double trialSeconds = 3.0)
    {
        var scratch = Path.Combine(Path.GetTempPath(), "bench-scheduling-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(scratch);
        try
        {
            var setup = Stopwatch.StartNew();
            var path = Path.Combine(scratch, "scale.yaml");
            File.WriteAllText(path, Experiment(trials, workers));
            var spec = ExperimentLoader.Load(path);
            using var store = new RunStore(Path.Combine(scratch, "runs"));
            var run = store.Create(spec, TrialComponents.Expand(spec), File.ReadAllText(path));
            store.Writer.Flush();
            Console.WriteLine($"scheduling bench: a run of {trials:N0} trials written in {setup.Elapsed.TotalSeconds:F1} s");
            // What the coordinator pays per trial to read its stored spec (off its own thread, ahead of placement).
            var parse = Stopwatch.StartNew();
            var sample = run.Trials.Take(200).ToList();
            foreach (var trial in sample) trial.LoadSpec();
            var specMilliseconds = parse.Elapsed.TotalMilliseconds / sample.Count;
            Console.WriteLine($"scheduling bench: reading a stored trial spec takes {specMilliseconds:F2} ms");

            using var system = ActorSystem.Create("scheduling-bench", "akka.loglevel = ERROR\nakka.stdout-loglevel = ERROR");
            var manager = system.ActorOf(ExperimentManager.Props(store), "manager");
            var finished = new TaskCompletionSource();
            var runId = run.Id;
            system.ActorOf(Props.Create(() => new RunWatcher(runId, finished)));
            var duration = TimeSpan.FromSeconds(trialSeconds);
            var registered = new CountdownEvent(workers);
            var timeline = new Timeline();
            for (var w = 0; w < workers; w++)
            {
                var id = $"sim-{w:D4}";
                system.ActorOf(Props.Create(() => new SimulatedWorker(manager, id, duration, registered, timeline)), id);
            }
            if (!registered.Wait(TimeSpan.FromMinutes(1))) throw new TimeoutException("the simulated workers did not all register");

            var clock = Stopwatch.StartNew();
            timeline.Start(clock);
            manager.Ask<RunAccepted>(new SubmitRun(run.Id), TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
            var accepted = clock.Elapsed.TotalSeconds;
            if (!finished.Task.Wait(TimeSpan.FromSeconds(trialSeconds * Math.Ceiling((double)trials / workers) * 4 + 120)))
            {
                // Say which trials are stuck where, so a rare hang can be followed up from the bench's output alone.
                store.Writer.Flush();
                var stuck = run.Statuses().Where(s => s.State != TrialState.Completed).ToList();
                var states = string.Join(", ", stuck.GroupBy(s => s.State).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}"));
                throw new TimeoutException($"the run did not finish after {clock.Elapsed.TotalSeconds:F0} s: {states}; " +
                    $"first of them: {string.Join(", ", stuck.Take(5).Select(s => $"{s.TrialId} at step {s.Step} ({s.Error ?? "no error"})"))}");
            }
            var makespan = clock.Elapsed.TotalSeconds;
            store.Writer.Flush();
            var statuses = run.Statuses();
            var completed = statuses.Count(s => s.State == TrialState.Completed);
            if (completed != trials) throw new InvalidDataException($"{completed} of {trials} trials completed");
            var ideal = Math.Ceiling((double)trials / workers) * trialSeconds;
            var peak = PeakResidentBytes();
            var (firstWave, gaps) = timeline.Summary();
            var gapMedian = gaps.Count == 0 ? 0 : gaps[gaps.Count / 2];
            var gapP99 = gaps.Count == 0 ? 0 : gaps[(int)(gaps.Count * 0.99)];
            var idle = firstWave.Sum() + gaps.Sum();
            var result = new
            {
                machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                simulated = new { workers, trials, trial_seconds = trialSeconds },
                what = "the real ExperimentManager and TrialCoordinator actors with the SQLite run-state store, in one process, against simulated workers that follow the protocol; makespan from submit to the run's last trial recorded",
                makespan_seconds = makespan,
                ideal_seconds = ideal,
                overhead = makespan / ideal - 1,
                submit_answered_seconds = accepted,
                spec_read_milliseconds = specMilliseconds,
                first_assignment_seconds = new { median = firstWave.Count == 0 ? 0 : firstWave[firstWave.Count / 2], max = firstWave.Count == 0 ? 0 : firstWave[^1] },
                worker_idle_between_trials_seconds = new { median = gapMedian, p99 = gapP99 },
                worker_idle_share = idle / (workers * makespan),
                load_average = File.ReadAllText("/proc/loadavg").Trim(),
                trials_completed = completed,
                peak_resident_bytes = peak,
                managed_heap_bytes = GC.GetTotalMemory(forceFullCollection: false),
                reference = new { system = "Ray Tune", trials = 10_000, makespan_seconds = 715, ideal_seconds = 625, overhead = 715.0 / 625 - 1 },
                goal_overhead = 0.05,
            };
            File.WriteAllText(Path.Combine(outDir, "scheduling.json"), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            var md = new StringBuilder()
                .AppendLine(CultureInfo.InvariantCulture, $"# Scheduling at scale: {workers:N0} simulated workers, {trials:N0} trials")
                .AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"Machine: {result.machine.cores} cores. Measured: {result.what}. Each trial takes {trialSeconds:F1} s on its worker, so the ideal makespan is {Math.Ceiling((double)trials / workers):F0} waves x {trialSeconds:F1} s.")
                .AppendLine()
                .AppendLine("| measure | value | goal |")
                .AppendLine("|---|---|---|")
                .AppendLine(CultureInfo.InvariantCulture, $"| makespan | {makespan:F1} s | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| ideal makespan | {ideal:F1} s | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| **scheduling overhead** | **{result.overhead:P1}** | < 5% (Ray Tune: {result.reference.overhead:P1}) |")
                .AppendLine(CultureInfo.InvariantCulture, $"| submit answered after | {accepted:F2} s | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| a worker's first trial assigned after (median / last) | {result.first_assignment_seconds.median:F2} s / {result.first_assignment_seconds.max:F2} s | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| a worker idle between two trials (median / p99) | {gapMedian * 1000:F0} ms / {gapP99 * 1000:F0} ms | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| load average at the end (1, 5, 15 min) | {result.load_average} | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| reading one stored trial spec (done ahead of placement, off the coordinator's thread) | {specMilliseconds:F2} ms | |")
                .AppendLine(CultureInfo.InvariantCulture, $"| peak resident memory (coordinator, store and simulated workers) | {peak / 1e6:F0} MB | |")
                .ToString();
            File.WriteAllText(Path.Combine(outDir, "scheduling.md"), md);
            Console.WriteLine(md);
            system.Terminate().Wait(TimeSpan.FromSeconds(30));
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The quickstart experiment as a sweep of <paramref name="trials"/> seeds (the simulated workers never read
    /// the data; the spec is still validated and stored per trial, as for a real run).</summary>
    private static string Experiment(int trials, int workers)
    {
        var yaml = File.ReadAllText(Path.Combine("experiments", "quickstart.yaml"))
            .Replace("../data/sample", Path.GetFullPath(Path.Combine("data", "sample")));
        return yaml + $"  max_concurrent_trials: {Math.Min(workers, 4096)}\nsweep:\n  grid:\n    seed: [{string.Join(", ", Enumerable.Range(0, trials))}]\n";
    }

    private static long PeakResidentBytes()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? Process.GetCurrentProcess().PeakWorkingSet64 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>When each simulated worker got its first trial, and how long each sat idle between two.</summary>
    private sealed class Timeline
    {
        private readonly object _gate = new();
        private readonly List<double> _first = new();
        private readonly List<double> _gaps = new();
        private Stopwatch _clock = new();

        public void Start(Stopwatch clock) => _clock = clock;
        public double Now => _clock.Elapsed.TotalSeconds;

        public void Assigned(double? freeSince)
        {
            var now = Now;
            lock (_gate)
            {
                if (freeSince is { } since) _gaps.Add(now - since);
                else _first.Add(now);
            }
        }

        public (List<double> First, List<double> Gaps) Summary()
        {
            lock (_gate) return (_first.Order().ToList(), _gaps.Order().ToList());
        }
    }

    /// <summary>Completes when the coordinator publishes that the run has finished.</summary>
    private sealed class RunWatcher : ReceiveActor
    {
        public RunWatcher(string runId, TaskCompletionSource finished)
        {
            Receive<RunFinished>(m => m.RunId == runId, _ => finished.TrySetResult());
            ReceiveAny(_ => { });
        }

        protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(RunFinished));
    }

    /// <summary>A worker reduced to its protocol: registers, answers an assignment with a listening rank, reports the
    /// trial's start, and after the trial's duration reports it completed.</summary>
    private sealed class SimulatedWorker : ReceiveActor, IWithTimers
    {
        private sealed record Done(IActorRef Coordinator, RankFinished Finished);

        public ITimerScheduler Timers { get; set; } = null!;

        private readonly IActorRef _manager;
        private readonly string _id;

        public SimulatedWorker(IActorRef manager, string id, TimeSpan duration, CountdownEvent registered, Timeline timeline)
        {
            _manager = manager;
            _id = id;
            var counted = false;
            double? freeSince = null;
            Receive<WorkerRegistered>(_ =>
            {
                if (!counted) registered.Signal();
                counted = true;
            });
            Receive<AssignRank>(a =>
            {
                timeline.Assigned(freeSince);
                Sender.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, "127.0.0.1", 1));
            });
            Receive<StartTraining>(start =>
            {
                var (type, payload) = MessagePackAkkaSerializer.Pack(new TrialStarted(start.TrialId, 0, 240, 1_000_000, null, null));
                Sender.Tell(new RankEvent(start.TrialId, start.Generation, 0, type, payload));
                Timers.StartSingleTimer("done", new Done(Sender, new RankFinished(start.TrialId, start.Generation, 0, TrialOutcome.Completed, 240, null)), duration);
            });
            Receive<Done>(d =>
            {
                freeSince = timeline.Now;
                d.Coordinator.Tell(d.Finished);
            });
            ReceiveAny(_ => { });
        }

        protected override void PreStart() => _manager.Tell(new RegisterWorker(_id, "127.0.0.1", ClusterHosting.TrainerRole, "cpu", 1));
    }
}
