using System.Globalization;
using Spectre.Console;
using Training.Shared.Training;
using Training.Orchestrator.Api;
using Training.Orchestrator.Cluster;
using Training.Shared.Cluster;
using Training.Orchestrator.State;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;

namespace Training.Orchestrator.Cli;

/// <summary>The <c>orchestrator</c> command line.</summary>
public static class Commands
{
    public const string Usage = """
        usage: orchestrator <command> [options]

          submit EXPERIMENT.yaml [--runs DIR] [--storage URI]   expand the sweep and run every trial on a local cluster
          submit EXPERIMENT.yaml --cluster HOST:PORT [--detach | --follow]
                                                ... or on the cluster of an `orchestrator serve`; --detach returns
                                                once the run is queued, --follow (the default) prints its progress
          list [--json] [--runs DIR | --cluster HOST:PORT]   runs, newest first: state, trials done/total, started
          status [RUN] [--json] [--runs DIR | --cluster HOST:PORT]   list runs, or one run's trials and attempts
          logs RUN [--trial ID] [--follow] [--json] [--runs DIR | --cluster HOST:PORT]
                                                print a run's metrics log (all trials, or one); --follow keeps
                                                printing new events until the trials have finished
          cancel RUN [--runs DIR | --cluster HOST:PORT]     ask a running run to checkpoint and stop
          resume RUN [--trial ID] [--steps N] [--set KEY=VALUE]... [--runs DIR | --cluster HOST:PORT]
                                                continue unfinished trials (or one) from their latest checkpoints,
                                                optionally with changed settings (validated like the file)
          serve [--port P] [--http-port H] [--host ADDR] [--runs DIR] [--state URI] [--secret S] [--storage URI]
                [--token-file FILE] [--data-root DIR[:DIR...]] [--public-read] [--dashboard-port D]
                [--tls-cert FILE --tls-key FILE --tls-ca FILE]
                                                a long-lived cluster seed, coordinator, HTTP API and dashboard
          dashboard [--runs DIR] [--port N] [--host ADDR] [--token-file FILE]
                                                the dashboard of a runs folder, without a cluster (docs/dashboard.md)
          validate EXPERIMENT.yaml [--runs DIR]  check an experiment file, its data, init_from and teacher sources; list its trials
          inspect EXPERIMENT.yaml [--json]      per trial: architecture, parameter counts and training FLOPs per token
          data import --from DIR|FILE --out DIR|azure://... [--rows-per-shard N] [--format plain|brown|task]
                      [--eval-fraction F] [--seed S]
                                                write text files as FineWeb-Edu parquet shards (task: JSONL
                                                prompt/target lines as task shards)
          data synth-task --kind reverse|sort|add --out DIR [--train N] [--eval N] [--seed S]
                                                a synthetic seq2seq task as task shards (train/ and eval/)

        --cluster calls send the API token from --token-file, else $ORCHESTRATOR_API_TOKEN, else RUNS/.api-token.
        RUN is a run id, a unique prefix of one, or 'latest'. Runs live under --runs, else $ORCHESTRATOR_RUNS, else ./runs.
        --state URI: where run state is kept (every command that reads runs takes it): sqlite:PATH (default
        sqlite:RUNS/state.db) or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE; else $ORCHESTRATOR_STATE.
        --storage URI: where checkpoints go (a folder, file:///path or azure://ACCOUNT/container/prefix; each run gets
        its own folder below it); by default the run folder. Credentials come from the workers' environment
        (TRAINING_STORAGE_<ACCOUNT>_CONNECTION_STRING, ..._SAS, ..._ENDPOINT; see docs/operations.md).
        --json prints machine-readable JSON (snake_case; status prints what GET /api/runs[/RUN] answers; logs one
        object per event and line).
        Exit codes: 0 success, 1 a trial failed, 2 bad input, 130 cancelled (logs --follow: the run's outcome).
        """;

    private static readonly HashSet<string> RunsOption = ["runs", "state", "cluster", "token-file"];
    private static readonly HashSet<string> Json = ["json"];

    /// <summary>The runs of --runs, with their state in --state (see <see cref="RunStore.FromOption"/>).</summary>
    private static RunStore Store(ArgReader a, BlobLocation? storage = null) => RunStore.FromOption(a.Value("runs"), storage, a.Value("state"));

    /// <summary>The API token a --cluster call sends (see <see cref="ApiClient.FindToken"/>).</summary>
    private static string? ClusterToken(ArgReader a) => ApiClient.FindToken(a.Value("token-file"), RunStore.FromOption(a.Value("runs")).Root);

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        // Piped or logged output has no terminal width; keep summary tables on one line per trial.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        try
        {
            var rest = args.Skip(1);
            return args[0] switch
            {
                "submit" => await SubmitAsync(new ArgReader(rest, new HashSet<string>(RunsOption) { "storage" }, new HashSet<string> { "detach", "follow" })),
                "validate" => Validate(new ArgReader(rest, new HashSet<string> { "runs" })),
                "inspect" => InspectCommand.Run(new ArgReader(rest, new HashSet<string>(), Json)),
                "status" => await StatusAsync(new ArgReader(rest, RunsOption, Json)),
                "list" => await ListAsync(new ArgReader(rest, RunsOption, Json)),
                "logs" => await LogsAsync(new ArgReader(rest, new HashSet<string>(RunsOption) { "trial" }, new HashSet<string> { "json", "follow" })),
                "serve" => await ServeAsync(new ArgReader(rest, new HashSet<string> { "port", "http-port", "host", "runs", "state", "secret", "token-file", "data-root", "storage",
                    "dashboard-port", "tls-cert", "tls-key", "tls-ca" },
                    new HashSet<string> { "public-read" }, environmentPrefix: "ORCHESTRATOR_")),
                "dashboard" => await Dashboard.DashboardCommand.RunAsync(new ArgReader(rest, new HashSet<string> { "runs", "state", "port", "host", "token-file" })),
                "cancel" => Cancel(new ArgReader(rest, RunsOption)),
                "resume" => await ResumeAsync(new ArgReader(rest, new HashSet<string>(RunsOption) { "trial", "steps", "set" })),
                "data" when args.Length > 1 && args[1] == "import" => DataImport(new ArgReader(args.Skip(2),
                    new HashSet<string> { "from", "out", "rows-per-shard", "format", "eval-fraction", "seed" })),
                "data" when args.Length > 1 && args[1] == "synth-task" => DataSynthTask(new ArgReader(args.Skip(2),
                    new HashSet<string> { "kind", "out", "train", "eval", "seed", "rows-per-shard" })),
                _ => throw new UsageException($"unknown command '{string.Join(' ', args.Take(2))}'"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"orchestrator: {e.Message}\n\n{Usage}");
            return 2;
        }
        catch (SpecException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ShardFormatException)
        {
            Console.Error.WriteLine($"orchestrator: {e.Message}");
            return 2;
        }
        catch (RunStateStoreException e)
        {
            Console.Error.WriteLine($"orchestrator: {e.Message}");
            return 1;
        }
        catch (BlobStoreException e)
        {
            // Storage that refuses or does not answer is not a mistake in the input: exit 1, as for a failed run.
            Console.Error.WriteLine($"orchestrator: storage: {e.Message}");
            return 1;
        }
    }

    private static int Validate(ArgReader a)
    {
        var spec = ExperimentLoader.Load(a.Single("experiment file"));
        var trials = TrialComponents.Expand(spec);
        if (!ValidateData(trials) | !ValidateInitFrom(trials, RunStore.FromOption(a.Value("runs")).Root)) return 2;
        Console.WriteLine($"{spec.SourceFile}: valid, {trials.Count} trial(s)");
        foreach (var line in InspectCommand.StageGraph(spec, trials)) Console.WriteLine(line);
        foreach (var t in trials)
            Console.WriteLine($"  {t.Id}  {string.Join("  ", t.Overrides.Select(o => $"{o.Key}={o.Value}"))}");
        return 0;
    }

    /// <summary>Reads every shard the trials name, in full (the same check a trial runs at its start, plus every row
    /// group decoded; blobs with this machine's storage credentials); prints one line per data split, and each bad file to stderr. False when any file is bad.</summary>
    private static bool ValidateData(IReadOnlyList<Trial> trials)
    {
        var ok = true;
        var splits = trials
            .SelectMany(t => new[] { ("data.train", t.Spec.Data.Train), ("data.eval", t.Spec.Data.Eval) }
                .Select(s => (Key: s.Item1, Patterns: s.Item2, Base: Path.GetDirectoryName(t.Spec.SourceFile) ?? ".")))
            .Where(s => s.Patterns.Count > 0)
            .DistinctBy(s => (s.Key, string.Join("\n", s.Patterns), s.Base));
        foreach (var (key, patterns, baseDirectory) in splits)
        {
            var files = ShardSources.Default.Resolve(patterns, baseDirectory);
            var report = ShardFiles.Check(files, ShardCheckDepth.Full);
            foreach (var problem in report.Problems) Console.Error.WriteLine($"orchestrator: {key}: {problem.Message}");
            if (report.Ok)
                Console.WriteLine($"{key}: {report.Files} shard(s), {report.RowGroups} row group(s), {report.Rows:N0} rows, all readable");
            ok &= report.Ok;
        }
        return ok;
    }

    /// <summary>Every model.init_from and distill.teacher names a committed checkpoint in the runs folder (or a checkpoints
    /// folder).</summary>
    private static bool ValidateInitFrom(IReadOnlyList<Trial> trials, string runsRoot)
    {
        var problems = trials
            .SelectMany(t => new[] { (Key: "model.init_from", Source: t.Spec.Model.InitFrom), (Key: "distill.teacher", Source: t.Spec.Distill.Teacher) })
            .Where(s => s.Source is not null).Distinct()
            .Select(s => s.Key == "distill.teacher" && File.Exists(Path.Combine(s.Source!, "config.json"))
                ? $"distill.teacher {s.Source}: a Hugging Face folder (config.json); teachers from Hugging Face weights are not supported yet: name a checkpoint this system trained"
                : InitialWeights.Problem(s.Source!, runsRoot, s.Key))
            .OfType<string>().ToList();
        foreach (var problem in problems) Console.Error.WriteLine($"orchestrator: {problem}");
        return problems.Count == 0;
    }

    private static async Task<int> SubmitAsync(ArgReader a)
    {
        var path = a.Single("experiment file");
        // Everything is validated before any work: the spec, every trial of the sweep, the data files.
        var spec = ExperimentLoader.Load(path);
        var trials = TrialComponents.Expand(spec);
        var storage = StorageOption(a);
        if (a.Has("detach") && a.Has("follow")) throw new UsageException("--detach and --follow exclude each other: give one (--follow is the default)");
        if (a.Has("detach") && a.Value("cluster") is null)
            throw new UsageException("--detach needs --cluster HOST:PORT: without it the run's cluster lives inside this command and ends with it; " +
                                     "start `orchestrator serve` and submit to it, or leave out --detach");
        if (a.Value("cluster") is { } address)
        {
            // The API takes a flat list of trials; a pipeline's graph and picks live in the local run record only.
            if (spec.Stages is not null)
                throw new ArgumentException($"{path}: a file with stages: runs on the local cluster only (submit without --cluster)");
            if (storage is not null)
                throw new ArgumentException("--storage does not go with --cluster: the cluster's storage is set by `orchestrator serve --storage URI`");
            return await RemoteCluster.SubmitAsync(address, ClusterToken(a), spec, trials, File.ReadAllText(path), detach: a.Has("detach"));
        }
        using var store = Store(a, storage);
        if (!ValidateInitFrom(trials, store.Root)) return 2;
        var run = store.Create(spec, trials, File.ReadAllText(path));
        Console.WriteLine($"run {run.Id}: {trials.Count} trial(s), results in {run.Dir}");
        return await ExecuteAsync(run);
    }

    /// <summary><c>--steps N</c> and every <c>--set KEY=VALUE</c> of a resume, as KEY=VALUE settings.</summary>
    private static List<string> ResumeSettings(ArgReader a)
    {
        var settings = new List<string>();
        if (a.Value("steps") is not null) settings.Add($"train.steps={a.Int("steps", 0, min: 1)}");
        settings.AddRange(a.Values("set"));
        return settings;
    }

    private static async Task<int> ResumeAsync(ArgReader a)
    {
        var settings = ResumeSettings(a);
        if (a.Value("cluster") is { } address)
            return await RemoteCluster.ResumeAsync(address, ClusterToken(a), a.Single("run id"), new ResumeRequest(a.Value("trial"), settings));
        using var store = Store(a);
        var run = store.Open(a.Single("run id"));
        IReadOnlyList<TrialRecord> targets;
        try
        {
            targets = run.PrepareResume(a.Value("trial"), settings);
        }
        catch (SpecException e)
        {
            // A setting came from the command line, not from a place in the file: say so, without the file:line form.
            throw new ArgumentException("resume: " + string.Join("; ", e.Errors.Select(x => $"{x.Key}: {x.Message}")), e);
        }
        if (run.CancelRequested) run.ClearCancel();
        Console.WriteLine($"run {run.Id}: resuming {targets.Count} unfinished trial(s)" +
                          (settings.Count == 0 ? "" : $" with {string.Join(", ", settings)}"));
        return await ExecuteAsync(run, a.Value("trial") is null ? null : targets[0].Id);
    }

    /// <summary>Runs a run's unfinished trials on a local cluster (coordinator here, worker processes beside it).</summary>
    /// <param name="onlyTrial">Run only this trial (a resume of one trial).</param>
    private static async Task<int> ExecuteAsync(RunRecord run, string? onlyTrial = null)
    {
        var pending = run.Trials.Where(t => (onlyTrial is null || t.Id == onlyTrial) && t.ReadStatus().State != TrialState.Completed).ToList();
        var display = new ProgressDisplay(run.Trials.Select(t => t.Id));
        using var cancel = new CancellationTokenSource();
        // Ctrl+C checkpoints and stops the trials; a second Ctrl+C is left to kill the process.
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return;
            e.Cancel = true;
            Console.Error.WriteLine("cancelling: trials will checkpoint and stop (resume with 'orchestrator resume')");
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            if (pending.Count > 0)
            {
                var specs = pending.Select(t => t.LoadSpec().Spec).ToList();
                var concurrent = Math.Min(pending.Count, specs.Min(s => s.Resources.MaxConcurrentTrials));
                var workers = specs.Max(s => s.Resources.Workers) * concurrent;
                var threads = specs.Max(s => s.Resources.Threads);
                var teachers = specs.Max(s => s.Resources.Teachers) * concurrent;
                Console.WriteLine($"local cluster: coordinator and {workers} worker process(es)" +
                                  (teachers > 0 ? $" and {teachers} teacher worker(s)" : "") + $", logs in {Path.Combine(run.Dir, "workers")}");
                await using var cluster = await LocalCluster.StartAsync(run.Store, workers, threads, Path.Combine(run.Dir, "workers"), teachers);
                await display.ShowWhileAsync(async () =>
                {
                    await cluster.RunAsync(run, display.Observe, cancel.Token, onlyTrial);
                    return 0;
                });
            }
            AnsiConsole.Write(ProgressDisplay.Summary(run));
            Console.WriteLine($"metrics: orchestrator logs {run.Id}{(run.Store.Root == Path.GetFullPath("runs") ? "" : $" --runs {run.Store.Root}")}");
            var states = run.Trials.Select(t => t.ReadStatus().State).ToList();
            if (states.Any(s => s is TrialState.Failed or TrialState.Skipped)) return 1;
            if (states.Any(s => s is TrialState.Cancelled or TrialState.Pending or TrialState.Running)) return 130;
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static async Task<int> StatusAsync(ArgReader a)
    {
        if (a.Positional.Count > 1) a.Single("run id");
        var json = a.Has("json");
        if (a.Value("cluster") is { } address) return await RemoteCluster.StatusAsync(address, ClusterToken(a), a.Positional.FirstOrDefault(), json);
        using var store = Store(a);
        if (json)
        {
            // The API's own shape (GET /api/runs[/RUN]), so a script reads a runs folder and a served cluster alike.
            if (a.Positional.Count == 0) ReadCommands.PrintJson(store.List().Select(ApiServer.Summary).ToList());
            else ReadCommands.PrintJson(ApiServer.Summary(store.Open(a.Single("run id"))));
            return 0;
        }
        if (a.Positional.Count == 0)
        {
            var runs = store.List();
            if (runs.Count == 0)
            {
                Console.WriteLine($"no runs under {store.Root}");
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("run", "experiment", "created", "trials", "completed", "running", "failed");
            foreach (var r in runs)
            {
                var states = r.Trials.Select(t => t.ReadStatus().State).ToList();
                table.AddRow(Markup.Escape(r.Id), Markup.Escape(r.Manifest.Experiment), r.Manifest.CreatedAt.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
                    states.Count.ToString(CultureInfo.InvariantCulture), states.Count(s => s == TrialState.Completed).ToString(CultureInfo.InvariantCulture),
                    states.Count(s => s == TrialState.Running).ToString(CultureInfo.InvariantCulture),
                    states.Count(s => s == TrialState.Failed).ToString(CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(table);
            return 0;
        }
        var run = store.Open(a.Single("run id"));
        AnsiConsole.Write(ProgressDisplay.Summary(run));
        if (ProgressDisplay.Attempts(ProgressDisplay.AttemptsOf(run)) is { } attempts) AnsiConsole.Write(attempts);
        if (run.CancelRequested) Console.WriteLine("cancel requested");
        return 0;
    }

    private static async Task<int> ListAsync(ArgReader a)
    {
        if (a.Positional.Count > 0) throw new UsageException($"list takes no run id, got {string.Join(" ", a.Positional)} (for one run: orchestrator status RUN)");
        if (a.Value("cluster") is { } address)
        {
            using var client = new ApiClient(address, ClusterToken(a));
            var remote = await client.RunsAsync();
            return ReadCommands.PrintList(remote.Select(r => ReadCommands.Listing(r.Id, r.Experiment, r.CreatedAt, r.Trials)), a.Has("json"), $"on {address}");
        }
        using var store = Store(a);
        return ReadCommands.PrintList(store.List().Select(r => ReadCommands.Listing(r.Id, r.Manifest.Experiment, r.Manifest.CreatedAt, r.Statuses())),
            a.Has("json"), $"under {store.Root}");
    }

    private static async Task<int> LogsAsync(ArgReader a)
    {
        var id = a.Single("run id");
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            if (a.Value("cluster") is { } address)
            {
                using var client = new ApiClient(address, ClusterToken(a));
                return await ReadCommands.LogsAsync(new ReadCommands.RemoteLogSource(client, id), a.Value("trial"), a.Has("json"), a.Has("follow"), cancel.Token);
            }
            using var store = Store(a);
            return await ReadCommands.LogsAsync(new ReadCommands.LocalLogSource(store.Open(id)), a.Value("trial"), a.Has("json"), a.Has("follow"), cancel.Token);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // Ctrl+C stops following; the run goes on.
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static int Cancel(ArgReader a)
    {
        if (a.Value("cluster") is { } address) return RemoteCluster.CancelAsync(address, ClusterToken(a), a.Single("run id")).GetAwaiter().GetResult();
        using var store = Store(a);
        var run = store.Open(a.Single("run id"));
        run.RequestCancel();
        Console.WriteLine($"run {run.Id}: cancel requested; running trials checkpoint and stop at their next step");
        return 0;
    }

    /// <summary>The <c>--storage</c> URI, checked here (a bad one is bad input, before anything runs); null when not given.</summary>
    private static Training.Shared.Storage.BlobLocation? StorageOption(ArgReader a) =>
        a.Value("storage") is { } uri ? Training.Shared.Storage.BlobLocation.Parse(uri) : null;

    private static async Task<int> ServeAsync(ArgReader a)
    {
        var host = a.Value("host") ?? "127.0.0.1";
        var port = a.Int("port", 4053, min: 0);
        var httpPort = a.Int("http-port", 8080, min: 0);
        using var store = Store(a, StorageOption(a));
        // Open the state store now: a database that is down or unreachable is a clear error before the cluster starts.
        Console.WriteLine($"run state: {store.Db.Description}");
        var secret = a.Value("secret") ?? Environment.GetEnvironmentVariable(ClusterHosting.SecretVariable);
        var generated = secret is null;
        secret ??= Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var token = ServeToken.Configured(a.Value("token-file"));
        var dataRoots = ServeToken.DataRoots(a.Value("data-root"));
        var tls = ClusterTls.FromSettings(a.Value("tls-cert"), a.Value("tls-key"), a.Value("tls-ca"));
        CoordinatorHost coordinator;
        EnsurePortFree(host, port, "--port");
        EnsurePortFree(host, httpPort, "--http-port");
        try
        {
            coordinator = await CoordinatorHost.StartAsync(host, port, secret, store, recover: true, tls: tls);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"cannot start the cluster node on {host}:{port}: {Innermost(e).Message} (is the port taken? choose another --port)", e);
        }
        await using var _ = coordinator;
        var tokenFile = token is null ? ServeToken.Generate(store.Root, out token) : null;
        // The dashboard shares the API's port unless --dashboard-port gives it its own.
        var dashboardPort = a.Value("dashboard-port") is null ? (int?)null : a.Int("dashboard-port", 0, min: 0);
        await using var api = ApiServer.Build(coordinator, store, host, httpPort, new ApiOptions(token, dataRoots, a.Has("public-read")),
            dashboardPort is null ? new Dashboard.DashboardData(store) : null);
        await using var dashboard = dashboardPort is { } dp ? Dashboard.DashboardCommand.ForCluster(coordinator, store, host, dp, token, a.Has("public-read")) : null;
        try
        {
            await api.StartAsync();
        }
        catch (IOException e)
        {
            throw new ArgumentException($"cannot serve the API on http://{host}:{httpPort}: {Innermost(e).Message} (choose another --http-port)", e);
        }
        if (dashboard is not null) await dashboard.StartAsync();
        // With --http-port 0 the system picks a port: report the one actually bound.
        var apiAddress = new Uri(api.Urls.First()).Authority;
        Console.WriteLine($"dashboard: http://{(dashboard is null ? apiAddress : new Uri(dashboard.Urls.First()).Authority)}{Dashboard.DashboardRoutes.Prefix}/");
        Console.WriteLine($"orchestrator serving: cluster seed {coordinator.Address}, API http://{apiAddress}, runs in {store.Root}{(store.Storage is { } storage ? $", checkpoints in {storage}" : "")}");
        var tlsHint = tls is null ? "" : " --tls-cert NODE.crt --tls-key NODE.key --tls-ca " + tls.AuthorityFile;
        Console.WriteLine(generated
            ? $"workers join with: TRAINING_CLUSTER_SECRET={secret} worker --seed {coordinator.Address}{tlsHint}"
            : $"workers join with: worker --seed {coordinator.Address}{tlsHint} (and the same secret)");
        if (tls is not null) Console.WriteLine($"cluster transport: mutual TLS, nodes must hold a certificate signed by {tls.AuthorityFile}");
        // The token is shown this once (when generated) and never logged; the CLI on this machine reads the file.
        Console.WriteLine(tokenFile is null
            ? "API token: the one configured (--token-file or $" + ApiOptions.TokenVariable + ")"
            : $"API token (also in {tokenFile}, mode 0600): {token}");
        Console.WriteLine($"API reads: {(a.Has("public-read") ? "open to anyone who reaches the port" : "need the token")}; data folders: {string.Join(", ", dataRoots)}");
        Console.WriteLine($"submit with: orchestrator submit EXPERIMENT.yaml --cluster {apiAddress}{(tokenFile is null ? "" : $" --runs {store.Root}")}");
        var stop = new TaskCompletionSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
        // `docker stop` and service managers send SIGTERM: leave the cluster and stop cleanly.
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        await stop.Task;
        Console.WriteLine("orchestrator: stopping");
        return 0;
    }

    /// <summary>Fails early, with one clear line, where a port is taken (Akka's own bind failure is a page of log).</summary>
    private static void EnsurePortFree(string host, int port, string option)
    {
        if (port == 0) return;
        try
        {
            var address = System.Net.IPAddress.TryParse(host, out var ip) ? ip : System.Net.Dns.GetHostAddresses(host)[0];
            var probe = new System.Net.Sockets.TcpListener(address, port);
            probe.Start();
            probe.Stop();
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new ArgumentException($"cannot listen on {host}:{port}: {e.Message} (choose another {option})", e);
        }
    }

    private static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);

    private static int DataImport(ArgReader a)
    {
        var format = a.Value("format") ?? "plain";
        var textFormat = format switch
        {
            "plain" or "task" => TextFormat.Plain,
            "brown" => TextFormat.Brown,
            _ => throw new UsageException($"--format must be plain, brown or task, got '{format}'"),
        };
        var output = a.Required("out");
        if (format == "task")
        {
            var (train, eval) = TaskImporter.Split(TaskImporter.ReadJsonl(a.Required("from")), a.Double("eval-fraction", 0, 0, 0.9), a.Int("seed", 0));
            return WriteTaskShards(train, eval, output, a.Int("rows-per-shard", 1000, min: 1));
        }
        var toBlobs = ShardSources.IsBlobPattern(output);
        // Shards for blob storage are written to a scratch folder first, then uploaded under the URI's prefix.
        var folder = toBlobs ? Path.Combine(Path.GetTempPath(), "orchestrator-import-" + Guid.NewGuid().ToString("N")[..12]) : output;
        var destination = toBlobs ? BlobLocation.Parse(output) : null;
        var store = destination is null ? null : BlobStores.Open(destination);
        try
        {
            var result = DocumentImporter.Import(new ImportOptions(
                a.Required("from"), folder, a.Int("rows-per-shard", 1000, min: 1),
                a.Double("eval-fraction", 0, 0, 0.9), textFormat, a.Int("seed", 0)));
            if (store is not null) UploadShards(folder, store);
            Console.WriteLine($"imported {result.Documents} documents ({result.Characters:N0} characters): " +
                              $"{result.TrainShards} train shard(s), {result.EvalShards} eval shard(s) under {destination?.ToString() ?? Path.GetFullPath(output)}");
            foreach (var skipped in result.Skipped) Console.WriteLine($"  skipped {skipped}");
            return 0;
        }
        finally
        {
            if (toBlobs && Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>data synth-task: a synthetic seq2seq task (train and held-out, disjoint prompts) as task shards.</summary>
    private static int DataSynthTask(ArgReader a)
    {
        var kind = a.Required("kind");
        var seed = a.Int("seed", 0);
        var eval = SyntheticTasks.Generate(kind, a.Int("eval", 500, min: 0), seed + 1);
        var train = SyntheticTasks.Generate(kind, a.Int("train", 4000, min: 1), seed, eval.Select(e => e.Prompt).ToHashSet());
        return WriteTaskShards(train, eval, a.Required("out"), a.Int("rows-per-shard", 1000, min: 1));
    }

    private static int WriteTaskShards(IReadOnlyList<TaskExample> train, IReadOnlyList<TaskExample> eval, string output, int rowsPerShard)
    {
        var toBlobs = ShardSources.IsBlobPattern(output);
        var folder = toBlobs ? Path.Combine(Path.GetTempPath(), "orchestrator-import-" + Guid.NewGuid().ToString("N")[..12]) : output;
        try
        {
            var result = TaskImporter.Write(train, eval, folder, rowsPerShard);
            var where = Path.GetFullPath(output);
            if (toBlobs)
            {
                var destination = BlobLocation.Parse(output);
                UploadShards(folder, BlobStores.Open(destination));
                where = destination.ToString();
            }
            Console.WriteLine($"wrote {result.Train} train and {result.Eval} held-out task examples ({result.Files.Count} shard(s)) under {where}");
            return 0;
        }
        finally
        {
            if (toBlobs && Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Uploads every shard under <paramref name="folder"/> to the same relative path in <paramref name="store"/>,
    /// create-only: a shard a run may be reading is never replaced (its readers would fail on the new version).</summary>
    private static void UploadShards(string folder, IBlobStore store)
    {
        foreach (var file in Directory.EnumerateFiles(folder, "*" + ShardFiles.ShardExtension, SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var blob = Path.GetRelativePath(folder, file).Replace(Path.DirectorySeparatorChar, '/');
            try
            {
                store.PutAsync(blob, File.ReadAllBytes(file), createOnly: true).GetAwaiter().GetResult();
            }
            catch (BlobAlreadyExistsException)
            {
                throw new ArgumentException($"{store.Location}/{blob} already exists: shards are never replaced in place " +
                    "(runs reading them would fail); import under a new prefix");
            }
        }
    }
}
