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
    Every setting may come from the environment instead: WORKER_SEED, WORKER_THREADS, WORKER_JOIN_TIMEOUT, ...
    (WORKER_ and the option's name in upper case, '-' as '_'); a flag wins over its variable.
    Exit codes: 0 after a requested shutdown, 2 bad arguments, 3 could not join the cluster.
    """;

string[] names = ["seed", "role", "device", "threads", "host", "port", "secret", "join-timeout", "rejoin-timeout", "drain-timeout",
    "tls-cert", "tls-key", "tls-ca"];
var options = new Dictionary<string, string>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
    if (!args[i].StartsWith("--") || i + 1 >= args.Length || !names.Contains(args[i][2..]))
    {
        Console.Error.WriteLine($"worker: unexpected argument '{args[i]}'\n\n{Usage}");
        return 2;
    }
    options[args[i][2..]] = args[++i];
}
// A setting not on the command line comes from WORKER_<NAME> (a container is configured by environment alone);
// messages name whichever was used.
static string Variable(string name) => "WORKER_" + name.ToUpperInvariant().Replace('-', '_');
string? Given(string name) => options.TryGetValue(name, out var v) ? v
    : Environment.GetEnvironmentVariable(Variable(name)) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
string Source(string name) => options.ContainsKey(name) ? "--" + name : Variable(name);
string Option(string name, string fallback) => Given(name) ?? fallback;
int Number(string name, int fallback, int min)
{
    var raw = Given(name);
    if (raw is null) return fallback;
    return int.TryParse(raw, out var value) && value >= min ? value
        : throw new ArgumentException($"{Source(name)} must be an integer >= {min}, got '{raw}'");
}

string seed, secret, role;
int threads, port, joinTimeout, rejoinTimeout, drainSeconds;
ClusterTls? tls;
try
{
    seed = Given("seed") ?? throw new ArgumentException($"--seed (or {Variable("seed")}) is required: the orchestrator's cluster address, HOST:PORT");
    ClusterHosting.ParseHostPort(seed, Source("seed"));
    secret = Option("secret", Environment.GetEnvironmentVariable(ClusterHosting.SecretVariable) ?? "");
    if (secret == "") throw new ArgumentException($"a cluster secret is required: --secret, {Variable("secret")} or {ClusterHosting.SecretVariable}");
    role = Option("role", ClusterHosting.TrainerRole);
    if (role is not (ClusterHosting.TrainerRole or ClusterHosting.TeacherRole))
        throw new ArgumentException($"{Source("role")} must be {ClusterHosting.TrainerRole} or {ClusterHosting.TeacherRole}, got '{role}'");
    threads = Number("threads", 2, min: 1);
    port = Number("port", 0, min: 0);
    joinTimeout = Number("join-timeout", 30, min: 1);
    rejoinTimeout = Number("rejoin-timeout", 600, min: 1);
    drainSeconds = Number("drain-timeout", 60, min: 1);
    tls = ClusterTls.FromSettings(Given("tls-cert"), Given("tls-key"), Given("tls-ca"));
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"worker: {e.Message}\n\n{Usage}");
    return 2;
}

var host = Option("host", "127.0.0.1");
var device = Option("device", "cpu");
// Host name and pid are not unique across containers on one host (each is pid 1 there): a random part makes them so.
var workerId = $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}";
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
