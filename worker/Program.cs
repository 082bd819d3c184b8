using Training.Shared.Cluster;
using Training.Worker.Cluster;
using Training.Worker.Training;
using Akka.Actor;

// worker: joins the training cluster and runs the trial ranks the coordinator assigns to it.
const string Usage = """
    usage: worker --seed HOST:PORT [--role trainer|teacher] [--device cpu|cuda:N] [--threads N]
                  [--host ADDRESS] [--port PORT] [--secret SECRET] [--join-timeout SECONDS]
                  [--rejoin-timeout SECONDS] [--drain-timeout SECONDS]
                  [--tls-cert FILE --tls-key FILE --tls-ca FILE]

      --seed          the orchestrator's cluster address (orchestrator serve prints it)
      --host          the address other nodes reach this worker at (default 127.0.0.1)
      --secret        the cluster secret; default $TRAINING_CLUSTER_SECRET
      --rejoin-timeout  how long to wait for a lost orchestrator to come back (default 600)
      --drain-timeout   on SIGTERM, how long ranks get to checkpoint and stop (default 60)
      --tls-cert, --tls-key, --tls-ca  mutual TLS: this node's PEM certificate and key and the cluster's CA
                      (default $TRAINING_TLS_CERT, $TRAINING_TLS_KEY, $TRAINING_TLS_CA; all three or none)
    Exit codes: 0 after a requested shutdown, 2 bad arguments, 3 could not join the cluster.
    """;

var options = new Dictionary<string, string>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
    if (!args[i].StartsWith("--") || i + 1 >= args.Length
        || args[i][2..] is not ("seed" or "role" or "device" or "threads" or "host" or "port" or "secret" or "join-timeout" or "rejoin-timeout" or "drain-timeout"
            or "tls-cert" or "tls-key" or "tls-ca"))
    {
        Console.Error.WriteLine($"worker: unexpected argument '{args[i]}'\n\n{Usage}");
        return 2;
    }
    options[args[i][2..]] = args[++i];
}
string Option(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;

var secret = Option("secret", Environment.GetEnvironmentVariable(ClusterHosting.SecretVariable) ?? "");
var role = Option("role", ClusterHosting.TrainerRole);
if (!options.TryGetValue("seed", out var seed) || secret == "" || role is not (ClusterHosting.TrainerRole or ClusterHosting.TeacherRole)
    || !int.TryParse(Option("threads", "2"), out var threads) || threads < 1
    || !int.TryParse(Option("port", "0"), out var port) || !int.TryParse(Option("join-timeout", "30"), out var joinTimeout)
    || !int.TryParse(Option("rejoin-timeout", "600"), out var rejoinTimeout) || rejoinTimeout < 1
    || !int.TryParse(Option("drain-timeout", "60"), out var drainSeconds) || drainSeconds < 1)
{
    Console.Error.WriteLine($"worker: --seed and a secret are required; --role is trainer or teacher; numbers must be positive\n\n{Usage}");
    return 2;
}
ClusterTls? tls;
try
{
    ClusterHosting.ParseHostPort(seed, "--seed");
    tls = ClusterTls.FromSettings(options.GetValueOrDefault("tls-cert"), options.GetValueOrDefault("tls-key"), options.GetValueOrDefault("tls-ca"));
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"worker: {e.Message}");
    return 2;
}

var host = Option("host", "127.0.0.1");
var device = Option("device", "cpu");
var workerId = $"{Environment.MachineName}-{Environment.ProcessId}";
// Ctrl+C, and the SIGTERM of `docker stop` or a service manager, leave the cluster cleanly, even while joining.
var interrupted = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
Console.CancelKeyPress += (_, e) => { e.Cancel = true; interrupted.TrySetResult("interrupted"); };
using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    interrupted.TrySetResult("terminated");
});
var node = new ClusterNodeSettings(host, port, secret, role, seed, Tls: tls);
// A worker outlives its coordinator: when the orchestrator dies or restarts, this loop joins the seed again with a fresh
// node (ranks of the old node are stopped first) and registers with whichever coordinator is there, for up to
// --rejoin-timeout seconds of waiting.
for (var attempt = 0; ; attempt++)
{
    var worker = await WorkerHost.StartAsync(node, workerId, device, threads);
    WorkerStop stop;
    try
    {
        var joining = worker.WaitUntilJoinedAsync(TimeSpan.FromSeconds(attempt == 0 ? joinTimeout : rejoinTimeout));
        if (await Task.WhenAny(joining, interrupted.Task) == interrupted.Task) return 0;
        if (!await joining)
        {
            Console.Error.WriteLine(attempt == 0
                ? $"worker: could not join the cluster at {seed} within {joinTimeout}s (is the orchestrator running there, and is the secret the same on both sides?)"
                : $"worker: the orchestrator at {seed} did not come back within {rejoinTimeout}s");
            return 3;
        }
        Console.WriteLine($"worker {workerId}: {(attempt == 0 ? "joined" : "rejoined")} {seed} as {role} ({device}, {threads} threads)");
        if (await Task.WhenAny(worker.Stopped, interrupted.Task) == interrupted.Task)
        {
            // SIGTERM: every rank checkpoints at its next step boundary and reports, so the coordinator runs the trial
            // again elsewhere from that step; then the node leaves.
            var ranks = await worker.Agent.Ask<int>(new DrainWorker("the worker is shutting down"), TimeSpan.FromSeconds(5));
            if (ranks > 0)
            {
                Console.WriteLine($"worker {workerId}: draining {ranks} rank(s), up to {drainSeconds}s");
                if (!await TrainerRank.WaitForTrainersAsync(TimeSpan.FromSeconds(drainSeconds)))
                    Console.WriteLine($"worker {workerId}: ranks did not stop within {drainSeconds}s; leaving anyway");
                // Let the ranks' last reports leave before the node does.
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            Console.WriteLine($"worker {workerId}: shutting down ({await interrupted.Task})");
            return 0;
        }
        stop = await worker.Stopped;
    }
    finally
    {
        await worker.DisposeAsync();
    }
    if (!stop.Rejoin)
    {
        Console.WriteLine($"worker {workerId}: shutting down ({stop.Reason})");
        return 0;
    }
    Console.WriteLine($"worker {workerId}: lost the coordinator ({stop.Reason}); stopping its ranks and joining {seed} again");
    if (!await TrainerRank.WaitForTrainersAsync(TimeSpan.FromSeconds(drainSeconds)))
        Console.WriteLine($"worker {workerId}: ranks still stopping after {drainSeconds}s; joining anyway");
}
