using System.CommandLine;
using Training.CommandLine;
using Training.Orchestrator.Api;
using Training.Orchestrator.State;
using Training.Shared.Data;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Spectre.Console;

namespace Training.Orchestrator.Cli;

/// <summary>The options every command that reads runs takes: where they are, or which served cluster to ask.</summary>
internal sealed record RunsArgs(string? Runs, string? State, string? Cluster, string? TokenFile)
{
    /// <summary>The runs of --runs, with their state in --state (see <see cref="RunStore.FromOption"/>).</summary>
    public RunStore Store(BlobLocation? storage = null) => RunStore.FromOption(Runs, storage, State);

    /// <summary>The API token a --cluster call sends (see <see cref="ApiClient.FindToken"/>).</summary>
    public string? ClusterToken() => ApiClient.FindToken(TokenFile, RunStore.FromOption(Runs).Root);
}

/// <summary><c>orchestrator serve</c>'s settings, each from its option or else from <c>ORCHESTRATOR_NAME</c>.</summary>
internal sealed record ServeArgs(string? Host, int? Port, int? HttpPort, string? Runs, string? State, string? Secret, string? TokenFile,
    string? DataRoot, string? Storage, int? DashboardPort, string? TlsCert, string? TlsKey, string? TlsCa, bool PublicRead);

/// <summary>The <c>orchestrator</c> command line: one System.CommandLine definition per command.</summary>
public static partial class Commands
{
    private const string Program = "orchestrator";

    /// <summary>The notes at the end of <c>orchestrator --help</c>: what several commands share.</summary>
    private const string Notes = """
        Notes:
          RUN is a run id, a unique prefix of one, or 'latest'. Runs live under --runs, else $ORCHESTRATOR_RUNS, else ./runs.
          --cluster HOST:PORT talks to an `orchestrator serve` (its HTTP API); the API token comes from --token-file,
          else $ORCHESTRATOR_API_TOKEN, else RUNS/.api-token.
          --state URI: where run state is kept (every command that reads runs takes it): sqlite:PATH (default
          sqlite:RUNS/state.db) or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE; else $ORCHESTRATOR_STATE.
          --storage URI: where checkpoints go (a folder, file:///path or azure://ACCOUNT/container/prefix; each run gets
          its own folder below it); by default the run folder. Credentials come from the workers' environment
          (TRAINING_STORAGE_<ACCOUNT>_CONNECTION_STRING, ..._SAS, ..._ENDPOINT; see docs/operations.md).
          --json (status, list, logs, inspect) prints machine-readable JSON with snake_case field names; see docs/cli.md.
          Shell completion: source <(orchestrator completion bash)
          Exit codes: 0 success, 1 a trial failed, 2 bad input, 130 cancelled.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        // `orchestrator help [COMMAND...]` is `orchestrator [COMMAND...] --help`.
        if (args.Length > 0 && args[0] == "help") args = [.. args.Skip(1), "--help"];
        // Piped or logged output has no terminal width; keep summary tables on one line per trial.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        try
        {
            return await CliKit.RunAsync(BuildRoot(), Program, args);
        }
        catch (SpecException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ShardFormatException)
        {
            Console.Error.WriteLine($"{Program}: {e.Message}");
            return 2;
        }
        catch (RunStateStoreException e)
        {
            Console.Error.WriteLine($"{Program}: {e.Message}");
            return 1;
        }
        catch (BlobStoreException e)
        {
            // Storage that refuses or does not answer is not a mistake in the input: exit 1, as for a failed run.
            Console.Error.WriteLine($"{Program}: storage: {e.Message}");
            return 1;
        }
    }

    /// <summary>Every command, its arguments and options, its help and examples.</summary>
    internal static RootCommand BuildRoot()
    {
        var root = new RootCommand("Runs sweeps of small language models on a local or served cluster of workers: submit experiments, " +
                                   "follow, inspect, cancel and resume runs, serve the cluster and its API, import data.");

        // Options shared by the commands that read runs.
        var runs = CliKit.Text("--runs", "the runs folder (default $ORCHESTRATOR_RUNS, else ./runs)", "DIR");
        var state = CliKit.Text("--state", "where run state is kept: sqlite:PATH or postgres://... (default $ORCHESTRATOR_STATE, else sqlite:RUNS/state.db)", "URI");
        var cluster = CliKit.Text("--cluster", "ask the `orchestrator serve` whose HTTP API is at this address instead of a runs folder", "HOST:PORT");
        var tokenFile = CliKit.Text("--token-file", "the API token for --cluster calls (default $ORCHESTRATOR_API_TOKEN, else RUNS/.api-token)", "FILE");
        var json = CliKit.Flag("--json", "print machine-readable JSON (snake_case field names) instead of tables");
        RunsArgs Runs(ParseResult p) => new(p.GetValue(runs), p.GetValue(state), p.GetValue(cluster), p.GetValue(tokenFile));
        void AddRuns(Command c)
        {
            c.Add(runs);
            c.Add(state);
            c.Add(cluster);
            c.Add(tokenFile);
        }
        var runId = CliKit.Required("RUN", "a run id, a unique prefix of one, or 'latest'");
        var experiment = CliKit.Required("EXPERIMENT.yaml", "the experiment file");

        // submit
        var storage = CliKit.Text("--storage", "where the run's checkpoints go: a folder, file:///path or azure://ACCOUNT/container/prefix", "URI");
        var detach = CliKit.Flag("--detach", "with --cluster: return once the run is queued, printing its id and how to follow it");
        var follow = CliKit.Flag("--follow", "print the run's progress until it ends (the default)");
        var submit = new Command("submit", "Expand the sweep and run every trial, on a local cluster or (--cluster) a served one.") { experiment, storage, detach, follow };
        AddRuns(submit);
        submit.SetAction(p => SubmitAsync(p.GetValue(experiment)!, Runs(p), p.GetValue(storage), p.GetValue(detach), p.GetValue(follow)));
        root.Add(CliKit.Examples(submit,
            "orchestrator submit experiments/quickstart.yaml",
            "orchestrator submit sweep.yaml --runs /data/runs --storage azure://acct/checkpoints",
            "orchestrator submit sweep.yaml --cluster 10.0.0.5:8080 --detach"));

        // validate
        var validate = new Command("validate", "Check an experiment file, its data, init_from and teacher sources; list its trials.") { experiment, runs };
        validate.SetAction(p => Validate(p.GetValue(experiment)!, p.GetValue(runs)));
        root.Add(CliKit.Examples(validate, "orchestrator validate experiments/quickstart.yaml"));

        // inspect
        var inspect = new Command("inspect", "Per trial: architecture, parameter counts and training FLOPs per token, before anything runs.") { experiment, json };
        inspect.SetAction(p => InspectCommand.Run(p.GetValue(experiment)!, p.GetValue(json)));
        root.Add(CliKit.Examples(inspect, "orchestrator inspect experiments/quickstart.yaml", "orchestrator inspect sweep.yaml --json"));

        // list
        var list = new Command("list", "The runs, newest first: state, trials done/total and when each started.") { json };
        AddRuns(list);
        list.SetAction(p => ListAsync(Runs(p), p.GetValue(json)));
        root.Add(CliKit.Examples(list, "orchestrator list", "orchestrator list --cluster 10.0.0.5:8080 --json"));

        // status
        var optionalRun = CliKit.Optional("RUN", "one run (an id, a unique prefix of one, or 'latest'); without it, every run");
        var status = new Command("status", "Every run, or one run's trials (sweep values, state, losses) and their attempts.") { optionalRun, json };
        AddRuns(status);
        status.SetAction(p => StatusAsync(p.GetValue(optionalRun), Runs(p), p.GetValue(json)));
        root.Add(CliKit.Examples(status, "orchestrator status", "orchestrator status latest", "orchestrator status RUN --cluster 10.0.0.5:8080 --json"));

        // logs
        var trial = CliKit.Text("--trial", "only this trial: its id or the end of it (t001)", "ID");
        var followLogs = CliKit.Flag("--follow", "keep printing new events until the trials have finished; exit with the run's outcome");
        var logs = new Command("logs", "A run's metrics log (JSON lines): every trial's, or one's.") { runId, trial, followLogs, json };
        AddRuns(logs);
        logs.SetAction(p => LogsAsync(p.GetValue(runId)!, p.GetValue(trial), Runs(p), p.GetValue(followLogs), p.GetValue(json)));
        root.Add(CliKit.Examples(logs, "orchestrator logs latest --trial t001", "orchestrator logs RUN --follow", "orchestrator logs RUN --json --cluster 10.0.0.5:8080"));

        // cancel
        var cancel = new Command("cancel", "Ask a running run's trials to checkpoint and stop (resume continues them).") { runId };
        AddRuns(cancel);
        cancel.SetAction(p => CancelAsync(p.GetValue(runId)!, Runs(p)));
        root.Add(CliKit.Examples(cancel, "orchestrator cancel latest", "orchestrator cancel RUN-ID --cluster 10.0.0.5:8080   # the full run id"));

        // resume
        var steps = CliKit.Integer("--steps", "change the resumed trials' train.steps", min: 1);
        var set = CliKit.Repeated("--set", "change a setting of the resumed trials' specs (validated like the file); may be repeated", "KEY=VALUE");
        var resume = new Command("resume", "Continue unfinished trials (or one) from their latest checkpoints, optionally with changed settings.")
            { runId, trial, steps, set };
        AddRuns(resume);
        resume.SetAction(p => ResumeAsync(p.GetValue(runId)!, p.GetValue(trial), p.GetValue(steps), p.GetValue(set) ?? [], Runs(p)));
        root.Add(CliKit.Examples(resume, "orchestrator resume latest", "orchestrator resume RUN --trial t003",
            "orchestrator resume RUN --steps 2000 --set optimizer.lr=1.0e-3"));

        root.Add(ServeCommand());
        root.Add(DashboardCommand());
        root.Add(DataCommand());

        var completion = new Command("completion", "Print a shell completion script (it asks the program through the [suggest] directive).");
        var bash = new Command("bash", "The bash completion script for orchestrator and worker.");
        bash.SetAction(_ => Console.Out.Write(CliKit.BashCompletion("orchestrator", "worker")));
        completion.Add(CliKit.Examples(bash, "source <(orchestrator completion bash)", "orchestrator completion bash > /etc/bash_completion.d/orchestrator"));
        root.Add(completion);

        CliKit.Examples(root, "orchestrator submit experiments/quickstart.yaml", "orchestrator list", "orchestrator logs latest --follow",
            "orchestrator serve --help");
        CliKit.InstallHelp(root, Notes);
        return root;
    }

    private static Command ServeCommand()
    {
        const string prefix = "ORCHESTRATOR_";
        string Variable(string name) => CliKit.VariableName(prefix, name);
        var host = CliKit.Text("--host", "the address to bind and to advertise to workers (default 127.0.0.1)", "ADDR", Variable("host"));
        var port = CliKit.Integer("--port", "the cluster port workers join (default 4053; 0 picks a free one)", min: 0, "P", Variable("port"));
        var httpPort = CliKit.Integer("--http-port", "the HTTP API port (default 8080; 0 picks a free one)", min: 0, "H", Variable("http-port"));
        var runs = CliKit.Text("--runs", "the runs folder (default ./runs)", "DIR", Variable("runs"));
        var state = CliKit.Text("--state", "where run state is kept: sqlite:PATH or postgres://...", "URI", Variable("state"));
        var secret = CliKit.Text("--secret", "the cluster secret (default $TRAINING_CLUSTER_SECRET, else a generated one)", "S", Variable("secret"), secret: true);
        var tokenFile = CliKit.Text("--token-file", "the API token's file (default $ORCHESTRATOR_API_TOKEN, else a generated RUNS/.api-token)", "FILE", Variable("token-file"));
        var dataRoot = CliKit.Text("--data-root", "the folders API-submitted specs may read data from, ':'-separated (default the current folder)", "DIR[:DIR...]", Variable("data-root"));
        var storage = CliKit.Text("--storage", "where runs' checkpoints go: a folder, file:///path or azure://ACCOUNT/container/prefix", "URI", Variable("storage"));
        var dashboardPort = CliKit.Integer("--dashboard-port", "serve the dashboard on its own port (default: on the API's)", min: 0, "D", Variable("dashboard-port"));
        var tlsCert = CliKit.Text("--tls-cert", "mutual TLS between nodes: this node's PEM certificate (with --tls-key and --tls-ca)", "FILE", Variable("tls-cert"));
        var tlsKey = CliKit.Text("--tls-key", "this node's PEM private key", "FILE", Variable("tls-key"));
        var tlsCa = CliKit.Text("--tls-ca", "the cluster's certificate authority", "FILE", Variable("tls-ca"));
        var publicRead = CliKit.Flag("--public-read", "API reads need no token (state changes still do)", Variable("public-read"));
        var serve = new Command("serve", "A long-lived cluster seed, coordinator, HTTP API and dashboard; workers join it, submit --cluster uses it.")
            { host, port, httpPort, runs, state, secret, tokenFile, dataRoot, storage, dashboardPort, tlsCert, tlsKey, tlsCa, publicRead };
        serve.SetAction(p => ServeAsync(new ServeArgs(p.GetValue(host), p.GetValue(port), p.GetValue(httpPort), p.GetValue(runs), p.GetValue(state),
            p.GetValue(secret) ?? CliKit.FromEnvironment(Variable("secret")), p.GetValue(tokenFile), p.GetValue(dataRoot), p.GetValue(storage), p.GetValue(dashboardPort),
            p.GetValue(tlsCert), p.GetValue(tlsKey), p.GetValue(tlsCa), p.GetValue(publicRead))));
        return CliKit.Examples(serve,
            "orchestrator serve",
            "orchestrator serve --host 10.0.0.5 --runs /shared/runs --data-root /shared/data --token-file /etc/orchestrator/api-token",
            "ORCHESTRATOR_HTTP_PORT=9090 ORCHESTRATOR_PUBLIC_READ=true orchestrator serve   # every option also from ORCHESTRATOR_<NAME>");
    }

    private static Command DashboardCommand()
    {
        var runs = CliKit.Text("--runs", "the runs folder (default $ORCHESTRATOR_RUNS, else ./runs)", "DIR");
        var state = CliKit.Text("--state", "where run state is kept (default $ORCHESTRATOR_STATE, else sqlite:RUNS/state.db)", "URI");
        var port = CliKit.Integer("--port", $"the port (default {Dashboard.DashboardCommand.DefaultPort}; 0 picks a free one)", min: 0);
        var host = CliKit.Text("--host", "the address to bind (default 127.0.0.1; elsewhere reads need the token too)", "ADDR");
        var tokenFile = CliKit.Text("--token-file", "the token cancel needs (default $ORCHESTRATOR_API_TOKEN, else RUNS/.api-token)", "FILE");
        var dashboard = new Command("dashboard", "The dashboard of a runs folder, without a cluster (docs/dashboard.md).") { runs, state, port, host, tokenFile };
        dashboard.SetAction(p => Dashboard.DashboardCommand.RunAsync(p.GetValue(runs), p.GetValue(state), p.GetValue(host), p.GetValue(port), p.GetValue(tokenFile)));
        return CliKit.Examples(dashboard, "orchestrator dashboard", "orchestrator dashboard --runs /data/runs --port 8095");
    }

    private static Command DataCommand()
    {
        var data = new Command("data", "Make training data: import text as FineWeb-Edu parquet shards, or synthesize a seq2seq task.");

        var from = CliKit.Text("--from", "a folder of text files or one file (task: a JSONL file of prompt/target lines)", "DIR|FILE");
        from.Required = true;
        var output = CliKit.Text("--out", "the folder (or azure://ACCOUNT/container/prefix) to write train/ and eval/ shards to", "DIR|URI");
        output.Required = true;
        var rowsPerShard = CliKit.Integer("--rows-per-shard", "rows per shard file (default 1000)", min: 1);
        var format = CliKit.Choice("--format", "how the input is written (default plain; brown: word/tag tokens; task: JSONL)", "plain", "brown", "task");
        var evalFraction = CliKit.Number("--eval-fraction", "the share of documents held out for eval (default 0)", 0, 0.9);
        var seed = CliKit.Integer("--seed", "the seed of the train/eval split (default 0)");
        var import = new Command("import", "Write text files as FineWeb-Edu parquet shards (or JSONL prompt/target lines as task shards).")
            { from, output, rowsPerShard, format, evalFraction, seed };
        import.SetAction(p => DataImport(p.GetValue(from)!, p.GetValue(output)!, p.GetValue(rowsPerShard) ?? 1000, p.GetValue(format) ?? "plain",
            p.GetValue(evalFraction) ?? 0, p.GetValue(seed) ?? 0));
        data.Add(CliKit.Examples(import,
            "orchestrator data import --from texts/ --out data/ --eval-fraction 0.05",
            "orchestrator data import --from brown/ --format brown --out azure://acct/corpus/brown",
            "orchestrator data import --from pairs.jsonl --format task --out task-data/"));

        var kind = CliKit.Choice("--kind", "the task", "reverse", "sort", "add");
        kind.Required = true;
        var synthOut = CliKit.Text("--out", "the folder (or azure://...) to write train/ and eval/ task shards to", "DIR|URI");
        synthOut.Required = true;
        var train = CliKit.Integer("--train", "training examples (default 4000)", min: 1);
        var eval = CliKit.Integer("--eval", "held-out examples, disjoint from the training prompts (default 500)", min: 0);
        var synthSeed = CliKit.Integer("--seed", "the generator's seed (default 0)");
        var synthRows = CliKit.Integer("--rows-per-shard", "rows per shard file (default 1000)", min: 1);
        var synth = new Command("synth-task", "A synthetic seq2seq task as task shards (train/ and eval/).") { kind, synthOut, train, eval, synthSeed, synthRows };
        synth.SetAction(p => DataSynthTask(p.GetValue(kind)!, p.GetValue(synthOut)!, p.GetValue(train) ?? 4000, p.GetValue(eval) ?? 500,
            p.GetValue(synthSeed) ?? 0, p.GetValue(synthRows) ?? 1000));
        data.Add(CliKit.Examples(synth, "orchestrator data synth-task --kind reverse --out task-data/ --train 2000 --eval 200"));
        return CliKit.Examples(data, "orchestrator data import --from texts/ --out data/", "orchestrator data synth-task --kind sort --out sort-data/");
    }
}
