using System.Diagnostics;
using System.Security.Cryptography;
using Akka.Actor;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;

namespace Training.Orchestrator.Cluster;

/// <summary>
/// The embedded default: a coordinator in this process plus local <c>worker</c> processes on 127.0.0.1, started for
/// one run and shut down after it. The same coordinator, workers and messages as a deployed cluster.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly CoordinatorHost _coordinator;
    private readonly List<Process> _workers;

    private LocalCluster(CoordinatorHost coordinator, List<Process> workers)
    {
        _coordinator = coordinator;
        _workers = workers;
    }

    public CoordinatorHost Coordinator => _coordinator;

    /// <summary>Where the worker program is: built next to the orchestrator (it references the worker project).</summary>
    public static string WorkerDll => Path.Combine(AppContext.BaseDirectory, "worker.dll");

    /// <param name="teachers">Workers with role teacher (distillation) started beside the trainers.</param>
    public static async Task<LocalCluster> StartAsync(RunStore store, int workers, int threadsPerWorker, string logDirectory, int teachers = 0)
    {
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var coordinator = await CoordinatorHost.StartAsync("127.0.0.1", 0, secret, store);
        Directory.CreateDirectory(logDirectory);
        var processes = new List<Process>();
        for (var i = 0; i < workers + teachers; i++)
        {
            var role = i < workers ? ClusterHosting.TrainerRole : ClusterHosting.TeacherRole;
            var info = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // The local coordinator lives and dies with this process, so a worker that loses it has nothing to wait for:
            // a one-second rejoin lets an orphan (this process killed) exit instead of waiting minutes for a restart.
            foreach (var arg in new[] { WorkerDll, "--seed", coordinator.Address, "--threads", threadsPerWorker.ToString(), "--host", "127.0.0.1",
                         "--rejoin-timeout", "1", "--role", role })
                info.ArgumentList.Add(arg);
            // The secret goes by environment, not the command line, so it does not show in `ps`.
            info.Environment[ClusterHosting.SecretVariable] = secret;
            var process = Process.Start(info) ?? throw new InvalidOperationException("could not start a worker process");
            var log = new StreamWriter(Path.Combine(logDirectory, i < workers ? $"worker-{i}.log" : $"teacher-{i - workers}.log"), append: true) { AutoFlush = true };
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
            process.Exited += (_, _) => { lock (log) log.Dispose(); };
            process.EnableRaisingEvents = true;
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            processes.Add(process);
        }
        return new LocalCluster(coordinator, processes);
    }

    /// <summary>Runs a run folder's unfinished trials on this cluster; see <see cref="CoordinatorHost.RunAsync"/>.</summary>
    public Task RunAsync(RunRecord run, Action<TrainingEvent> observe, CancellationToken cancel, string? onlyTrial = null) =>
        _coordinator.RunAsync(run, observe, cancel, () => _workers.All(w => w.HasExited)
            ? $"every worker process exited; see the logs in {Path.Combine(run.Dir, "workers")}"
            : null, onlyTrial);

    public async ValueTask DisposeAsync()
    {
        // Workers leave the cluster themselves, so the coordinator sees members leave rather than crash, and
        // stops quickly and quietly; any worker still there after a grace period is killed.
        try
        {
            await _coordinator.Manager.Ask<WorkersShutDown>(new ShutdownWorkers("the local run is over"), TimeSpan.FromSeconds(5));
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await Task.WhenAll(_workers.Select(w => w.WaitForExitAsync(grace.Token)));
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException or Akka.Actor.AskTimeoutException)
        {
            // Fall through to killing what is left.
        }
        foreach (var worker in _workers)
        {
            try
            {
                if (!worker.HasExited) worker.Kill(entireProcessTree: true);
                await worker.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
            worker.Dispose();
        }
        await _coordinator.DisposeAsync();
    }
}
