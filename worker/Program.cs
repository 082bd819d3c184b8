using Training.Shared.Cluster;
using Training.Worker.Cluster;

// worker: joins the training cluster and runs the trial ranks the coordinator assigns to it.
const string Usage = """
    usage: worker --seed HOST:PORT [--role trainer|teacher] [--device cpu|cuda:N] [--threads N]
                  [--host ADDRESS] [--port PORT] [--secret SECRET] [--join-timeout SECONDS]

      --seed          the orchestrator's cluster address (orchestrator serve prints it)
      --host          the address other nodes reach this worker at (default 127.0.0.1)
      --secret        the cluster secret; default $TRAINING_CLUSTER_SECRET
    Exit codes: 0 after a requested shutdown, 2 bad arguments, 3 could not join the cluster.
    """;

var options = new Dictionary<string, string>();
for (var i = 0; i < args.Length; i++)
{
    if (args[i] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
    if (!args[i].StartsWith("--") || i + 1 >= args.Length
        || args[i][2..] is not ("seed" or "role" or "device" or "threads" or "host" or "port" or "secret" or "join-timeout"))
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
    || !int.TryParse(Option("port", "0"), out var port) || !int.TryParse(Option("join-timeout", "30"), out var joinTimeout))
{
    Console.Error.WriteLine($"worker: --seed and a secret are required; --role is trainer or teacher; numbers must be positive\n\n{Usage}");
    return 2;
}
try
{
    ClusterHosting.ParseHostPort(seed, "--seed");
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
await using var worker = await WorkerHost.StartAsync(new ClusterNodeSettings(host, port, secret, role, seed), workerId, device, threads);
var joining = worker.WaitUntilJoinedAsync(TimeSpan.FromSeconds(joinTimeout));
if (await Task.WhenAny(joining, interrupted.Task) == interrupted.Task) return 0;
if (!await joining)
{
    Console.Error.WriteLine($"worker: could not join the cluster at {seed} within {joinTimeout}s " +
                            "(is the orchestrator running there, and is the secret the same on both sides?)");
    return 3;
}
Console.WriteLine($"worker {workerId}: joined {seed} as {role} ({device}, {threads} threads)");
var reason = await await Task.WhenAny(worker.Stopped, interrupted.Task);
Console.WriteLine($"worker {workerId}: shutting down ({reason})");
return 0;
