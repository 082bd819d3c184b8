using Training.Shared.Cluster;
using Training.Worker.Cluster;
using Training.Worker.Training;
using Akka.Actor;
using System.CommandLine;
using Training.CommandLine;

// worker: joins the training cluster and runs the trial ranks the coordinator assigns to it.
// Every setting may come from the environment instead: WORKER_ and the option's name in upper case, '-' as '_'
// (a container is configured by environment alone); an option on the command line wins, and messages name whichever was used.
static string Variable(string name) => CliKit.VariableName("WORKER_", name);
var seedOption = CliKit.Text("--seed", "the orchestrator's cluster address (orchestrator serve prints it)", "HOST:PORT", Variable("seed"));
var roleOption = CliKit.Text("--role", $"what this worker hosts: {ClusterHosting.TrainerRole} ranks or frozen {ClusterHosting.TeacherRole}s (default {ClusterHosting.TrainerRole})",
    $"{ClusterHosting.TrainerRole}|{ClusterHosting.TeacherRole}", Variable("role"));
roleOption.CompletionSources.Add(ClusterHosting.TrainerRole, ClusterHosting.TeacherRole);
var deviceOption = CliKit.Text("--device", "cpu or cuda:N (default cpu)", "cpu|cuda:N", Variable("device"));
var threadsOption = CliKit.Integer("--threads", "CPU threads per rank (default 2)", min: 1, "N", Variable("threads"));
var hostOption = CliKit.Text("--host", "the address other nodes reach this worker at (default 127.0.0.1)", "ADDRESS", Variable("host"));
var portOption = CliKit.Integer("--port", "this node's cluster port (default 0: a free one)", min: 0, "PORT", Variable("port"));
var secretOption = CliKit.Text("--secret", $"the cluster secret (default ${ClusterHosting.SecretVariable})", "SECRET", Variable("secret"), secret: true);
var joinOption = CliKit.Integer("--join-timeout", "how long to wait for the first join (default 30)", min: 1, "SECONDS", Variable("join-timeout"));
var rejoinOption = CliKit.Integer("--rejoin-timeout", "how long to wait for a lost orchestrator to come back (default 600)", min: 1, "SECONDS", Variable("rejoin-timeout"));
var drainOption = CliKit.Integer("--drain-timeout", "on SIGTERM, how long ranks get to checkpoint and stop (default 60)", min: 1, "SECONDS", Variable("drain-timeout"));
var tlsCertOption = CliKit.Text("--tls-cert", "mutual TLS: this node's PEM certificate (default $TRAINING_TLS_CERT; with --tls-key and --tls-ca)", "FILE", Variable("tls-cert"));
var tlsKeyOption = CliKit.Text("--tls-key", "this node's PEM private key (default $TRAINING_TLS_KEY)", "FILE", Variable("tls-key"));
var tlsCaOption = CliKit.Text("--tls-ca", "the cluster's certificate authority (default $TRAINING_TLS_CA)", "FILE", Variable("tls-ca"));
var root = new RootCommand("Joins the training cluster of an `orchestrator serve` and runs the trial ranks (or teachers) its coordinator assigns.")
{
    seedOption, roleOption, deviceOption, threadsOption, hostOption, portOption, secretOption, joinOption, rejoinOption, drainOption,
    tlsCertOption, tlsKeyOption, tlsCaOption,
};
CliKit.Examples(root,
    "TRAINING_CLUSTER_SECRET=... worker --seed 10.0.0.5:4053 --host 10.0.0.6 --threads 2",
    "worker --seed 10.0.0.5:4053 --device cuda:0 --role teacher",
    "WORKER_SEED=10.0.0.5:4053 WORKER_THREADS=4 worker   # configured by environment alone");
CliKit.InstallHelp(root, """
    Exit codes: 0 after a requested shutdown, 2 bad arguments, 3 could not join the cluster.
    Shell completion: source <(orchestrator completion bash)
    """);
root.SetAction((parse, _) => RunAsync(parse));
return await CliKit.RunAsync(root, "worker", args);

async Task<int> RunAsync(ParseResult parse)
{
    string Option(Option<string?> option, string fallback) => parse.GetValue(option) ?? fallback;
    string seed, secret, role;
    ClusterTls? tls;
    try
    {
        seed = parse.GetValue(seedOption) ?? throw new ArgumentException($"--seed (or {Variable("seed")}) is required: the orchestrator's cluster address, HOST:PORT");
        ClusterHosting.ParseHostPort(seed, CliKit.SourceOf(parse, seedOption));
        secret = parse.GetValue(secretOption) ?? CliKit.FromEnvironment(Variable("secret")) ?? Environment.GetEnvironmentVariable(ClusterHosting.SecretVariable) ?? "";
        if (secret == "") throw new ArgumentException($"a cluster secret is required: --secret, {Variable("secret")} or {ClusterHosting.SecretVariable}");
        role = Option(roleOption, ClusterHosting.TrainerRole);
        if (role is not (ClusterHosting.TrainerRole or ClusterHosting.TeacherRole))
            throw new ArgumentException($"{CliKit.SourceOf(parse, roleOption)} must be {ClusterHosting.TrainerRole} or {ClusterHosting.TeacherRole}, got '{role}'");
        tls = ClusterTls.FromSettings(parse.GetValue(tlsCertOption), parse.GetValue(tlsKeyOption), parse.GetValue(tlsCaOption));
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"worker: {e.Message}");
        Console.Error.WriteLine("See 'worker --help' for its usage and examples.");
        return CliKit.UsageExit;
    }
    var threads = parse.GetValue(threadsOption) ?? 2;
    var port = parse.GetValue(portOption) ?? 0;
    var joinTimeout = parse.GetValue(joinOption) ?? 30;
    var rejoinTimeout = parse.GetValue(rejoinOption) ?? 600;
    var drainSeconds = parse.GetValue(drainOption) ?? 60;
    var host = Option(hostOption, "127.0.0.1");
    var device = Option(deviceOption, "cpu");
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
}
