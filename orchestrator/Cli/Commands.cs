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
using Training.CommandLine;

namespace Training.Orchestrator.Cli;

/// <summary>The <c>orchestrator</c> command line.</summary>
public static partial class Commands
{
    private static int Validate(string path, string? runs)
    {
        var spec = ExperimentLoader.Load(path);
        var trials = TrialComponents.Expand(spec);
        if (!ValidateData(trials) | !ValidateInitFrom(trials, RunStore.FromOption(runs).Root)) return 2;
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
            .SelectMany(t => new[]
            {
                (Key: "model.init_from", Source: t.Spec.Model.InitFrom, t.Spec.Tokenizer, t.Spec.Distill),
                (Key: "distill.teacher", Source: t.Spec.Distill.Teacher, t.Spec.Tokenizer, t.Spec.Distill),
            })
            .Where(s => s.Source is not null).Distinct()
            .Select(s => s.Key == "distill.teacher" && HuggingFaceLlama.IsFolder(s.Source!)
                ? TeacherModel.HuggingFaceTokenizerProblem(s.Source!, s.Tokenizer) ?? TeacherModel.KindProblem(s.Source!, runsRoot, s.Distill)
                : InitialWeights.Problem(s.Source!, runsRoot, s.Key)
                  ?? (s.Key == "distill.teacher" ? TeacherModel.KindProblem(s.Source!, runsRoot, s.Distill) : null))
            .OfType<string>().ToList();
        foreach (var problem in problems) Console.Error.WriteLine($"orchestrator: {problem}");
        return problems.Count == 0;
    }

    private static async Task<int> SubmitAsync(string path, RunsArgs a, string? storageUri, bool detach, bool follow)
    {
        if (detach && follow) throw new UsageException("--detach and --follow exclude each other: give one (--follow is the default)");
        // Everything is validated before any work: the spec, every trial of the sweep, the data files.
        var spec = ExperimentLoader.Load(path);
        var trials = TrialComponents.Expand(spec);
        var storage = StorageOption(storageUri);
        if (detach && a.Cluster is null)
            throw new UsageException("--detach needs --cluster HOST:PORT: without it the run's cluster lives inside this command and ends with it; " +
                                     "start `orchestrator serve` and submit to it, or leave out --detach");
        if (a.Cluster is { } address)
        {
            // The API takes a flat list of trials; a pipeline's graph and picks live in the local run record only.
            if (spec.Stages is not null)
                throw new ArgumentException($"{path}: a file with stages: runs on the local cluster only (submit without --cluster)");
            if (storage is not null)
                throw new ArgumentException("--storage does not go with --cluster: the cluster's storage is set by `orchestrator serve --storage URI`");
            return await RemoteCluster.SubmitAsync(address, a.ClusterToken(), spec, trials, File.ReadAllText(path), detach);
        }
        using var store = a.Store(storage);
        if (!ValidateInitFrom(trials, store.Root)) return 2;
        var run = store.Create(spec, trials, File.ReadAllText(path));
        Console.WriteLine($"run {run.Id}: {trials.Count} trial(s), results in {run.Dir}");
        return await ExecuteAsync(run);
    }

    private static async Task<int> ResumeAsync(string id, string? trial, int? steps, IReadOnlyList<string> set, RunsArgs a)
    {
        // --steps N and every --set KEY=VALUE, as KEY=VALUE settings.
        var settings = new List<string>();
        if (steps is { } n) settings.Add($"train.steps={n}");
        settings.AddRange(set);
        if (a.Cluster is { } address)
            return await RemoteCluster.ResumeAsync(address, a.ClusterToken(), id, new ResumeRequest(trial, settings));
        using var store = a.Store();
        var run = store.Open(id);
        IReadOnlyList<TrialRecord> targets;
        try
        {
            targets = run.PrepareResume(trial, settings);
        }
        catch (SpecException e)
        {
            // A setting came from the command line, not from a place in the file: say so, without the file:line form.
            throw new ArgumentException("resume: " + string.Join("; ", e.Errors.Select(x => $"{x.Key}: {x.Message}")), e);
        }
        if (run.CancelRequested) run.ClearCancel();
        Console.WriteLine($"run {run.Id}: resuming {targets.Count} unfinished trial(s)" +
                          (settings.Count == 0 ? "" : $" with {string.Join(", ", settings)}"));
        return await ExecuteAsync(run, trial is null ? null : targets[0].Id);
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
            if (ProgressDisplay.Scores(run) is { } scores) AnsiConsole.Write(scores);
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

    private static async Task<int> StatusAsync(string? id, RunsArgs a, bool json)
    {
        if (a.Cluster is { } address) return await RemoteCluster.StatusAsync(address, a.ClusterToken(), id, json);
        using var store = a.Store();
        if (json)
        {
            // The API's own shape (GET /api/runs[/RUN]), so a script reads a runs folder and a served cluster alike.
            if (id is null) ReadCommands.PrintJson(store.List().Select(ApiServer.Summary).ToList());
            else ReadCommands.PrintJson(ApiServer.Summary(store.Open(id)));
            return 0;
        }
        if (id is null)
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
        var run = store.Open(id);
        AnsiConsole.Write(ProgressDisplay.Summary(run));
        if (ProgressDisplay.Scores(run) is { } scores) AnsiConsole.Write(scores);
        if (ProgressDisplay.Attempts(ProgressDisplay.AttemptsOf(run)) is { } attempts) AnsiConsole.Write(attempts);
        if (run.CancelRequested) Console.WriteLine("cancel requested");
        return 0;
    }

    private static async Task<int> ListAsync(RunsArgs a, bool json)
    {
        if (a.Cluster is { } address)
        {
            using var client = new ApiClient(address, a.ClusterToken());
            var remote = await client.RunsAsync();
            return ReadCommands.PrintList(remote.Select(r => ReadCommands.Listing(r.Id, r.Experiment, r.CreatedAt, r.Trials)), json, $"on {address}");
        }
        using var store = a.Store();
        return ReadCommands.PrintList(store.List().Select(r => ReadCommands.Listing(r.Id, r.Manifest.Experiment, r.Manifest.CreatedAt, r.Statuses())),
            json, $"under {store.Root}");
    }

    private static async Task<int> LogsAsync(string id, string? trial, RunsArgs a, bool follow, bool json)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            if (a.Cluster is { } address)
            {
                using var client = new ApiClient(address, a.ClusterToken());
                return await ReadCommands.LogsAsync(new ReadCommands.RemoteLogSource(client, id), trial, json, follow, cancel.Token);
            }
            using var store = a.Store();
            return await ReadCommands.LogsAsync(new ReadCommands.LocalLogSource(store.Open(id)), trial, json, follow, cancel.Token);
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

    private static async Task<int> CancelAsync(string id, RunsArgs a)
    {
        if (a.Cluster is { } address) return await RemoteCluster.CancelAsync(address, a.ClusterToken(), id);
        using var store = a.Store();
        var run = store.Open(id);
        run.RequestCancel();
        Console.WriteLine($"run {run.Id}: cancel requested; running trials checkpoint and stop at their next step");
        return 0;
    }

    /// <summary>The <c>--storage</c> URI, checked here (a bad one is bad input, before anything runs); null when not given.</summary>
    private static BlobLocation? StorageOption(string? uri) => uri is null ? null : BlobLocation.Parse(uri);

    private static async Task<int> ServeAsync(ServeArgs a)
    {
        var host = a.Host ?? "127.0.0.1";
        var port = a.Port ?? 4053;
        var httpPort = a.HttpPort ?? 8080;
        using var store = RunStore.FromOption(a.Runs, StorageOption(a.Storage), a.State);
        // Open the state store now: a database that is down or unreachable is a clear error before the cluster starts.
        Console.WriteLine($"run state: {store.Db.Description}");
        var secret = a.Secret ?? Environment.GetEnvironmentVariable(ClusterHosting.SecretVariable);
        var generated = secret is null;
        secret ??= Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var token = ServeToken.Configured(a.TokenFile);
        var dataRoots = ServeToken.DataRoots(a.DataRoot);
        var tls = ClusterTls.FromSettings(a.TlsCert, a.TlsKey, a.TlsCa);
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
        var dashboardPort = a.DashboardPort;
        await using var api = ApiServer.Build(coordinator, store, host, httpPort, new ApiOptions(token, dataRoots, a.PublicRead),
            dashboardPort is null ? new Dashboard.DashboardData(store) : null);
        await using var dashboard = dashboardPort is { } dp ? Dashboard.DashboardCommand.ForCluster(coordinator, store, host, dp, token, a.PublicRead) : null;
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
        Console.WriteLine($"API reads: {(a.PublicRead ? "open to anyone who reaches the port" : "need the token")}; data folders: {string.Join(", ", dataRoots)}");
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

    private static int DataImport(string from, string output, int rowsPerShard, string format, double evalFraction, int seed)
    {
        var textFormat = format switch
        {
            "plain" or "task" => TextFormat.Plain,
            "brown" => TextFormat.Brown,
            _ => throw new UsageException($"--format must be plain, brown or task, got '{format}'"),
        };
        if (format == "task")
        {
            var (train, eval) = TaskImporter.Split(TaskImporter.ReadJsonl(from), evalFraction, seed);
            return WriteTaskShards(train, eval, output, rowsPerShard);
        }
        var toBlobs = ShardSources.IsBlobPattern(output);
        // Shards for blob storage are written to a scratch folder first, then uploaded under the URI's prefix.
        var folder = toBlobs ? Path.Combine(Path.GetTempPath(), "orchestrator-import-" + Guid.NewGuid().ToString("N")[..12]) : output;
        var destination = toBlobs ? BlobLocation.Parse(output) : null;
        var store = destination is null ? null : BlobStores.Open(destination);
        try
        {
            var result = DocumentImporter.Import(new ImportOptions(from, folder, rowsPerShard, evalFraction, textFormat, seed));
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
    private static int DataSynthTask(string kind, string output, int trainCount, int evalCount, int seed, int rowsPerShard)
    {
        var eval = SyntheticTasks.Generate(kind, evalCount, seed + 1);
        var train = SyntheticTasks.Generate(kind, trainCount, seed, eval.Select(e => e.Prompt).ToHashSet());
        return WriteTaskShards(train, eval, output, rowsPerShard);
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
