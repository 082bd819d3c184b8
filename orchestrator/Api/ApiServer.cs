using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Training.Orchestrator.Cluster;
using Training.Orchestrator.State;
using Training.Shared.Data;
using Training.Shared.Messages;
using Training.Shared.Spec;

namespace Training.Orchestrator.Api;

/// <summary>
/// The HTTP API of <c>orchestrator serve</c>: submit, list, inspect, cancel and resume runs. Everything that arrives is
/// untrusted: the bearer token is checked first, bodies are bounded before they are read, names are checked against the
/// experiment-name pattern, data paths must lie under the served data folders, and every error is a JSON
/// <c>{"error": "..."}</c> that names what was wrong without showing server paths, other runs or file contents.
/// </summary>
public static class ApiServer
{
    private const int MaxSourceLength = 4096;

    /// <summary>The most metrics-log events one GET of a trial's events answers with.</summary>
    public const int MaxEventsPerPage = 5000;

    /// <summary>A submission is read strictly: a field this server does not know is an error, not silently dropped.</summary>
    private static readonly JsonSerializerOptions SubmitJson = new(RunStore.Json)
    {
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
        MaxDepth = 16,
    };

    /// <param name="dashboard">When given, the dashboard's pages and data are served on this port too (<see cref="Dashboard.DashboardRoutes"/>).</param>
    public static WebApplication Build(CoordinatorHost coordinator, RunStore store, string host, int port, ApiOptions options,
        Dashboard.DashboardData? dashboard = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{host}:{port}");
        builder.WebHost.ConfigureKestrel(k =>
        {
            // A backstop for any body not read by the handlers below, which bound it themselves.
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(15);
        });
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = RunStore.Json.PropertyNamingPolicy;
            foreach (var converter in RunStore.Json.Converters) o.SerializerOptions.Converters.Add(converter);
        });
        var app = builder.Build();
        var token = Encoding.UTF8.GetBytes(options.Token);

        app.Use(async (context, next) =>
        {
            try
            {
                var isRead = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
                // The dashboard's page shell and scripts hold no run data; its data calls need the token like any read.
                var publicAsset = dashboard is not null && Dashboard.DashboardRoutes.IsPublicAsset(context.Request.Path);
                if (!(isRead && (options.PublicRead || publicAsset)) && !HasToken(context.Request, token))
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await Error(StatusCodes.Status401Unauthorized,
                        "missing or wrong bearer token: send 'Authorization: Bearer TOKEN' (the token serve printed at start, or its token file)")
                        .ExecuteAsync(context);
                    return;
                }
                await next(context);
            }
            catch (BadHttpRequestException e)
            {
                if (!context.Response.HasStarted)
                    await Error(e.StatusCode, e.StatusCode == StatusCodes.Status413PayloadTooLarge
                        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the request body is larger than {options.MaxBodyBytes:N0} bytes") : "bad request").ExecuteAsync(context);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Nothing about the failure (paths, stack) goes to the client.
                if (!context.Response.HasStarted)
                    await Error(StatusCodes.Status500InternalServerError, "internal error").ExecuteAsync(context);
            }
        });

        app.MapPost("/api/runs", async (HttpRequest http) =>
        {
            var (request, problem) = await ReadSubmitAsync(http, options.MaxBodyBytes);
            if (problem is not null) return problem;
            return await SubmitAsync(coordinator, store, options, request!);
        });
        app.MapGet("/api/runs", () => Results.Ok(store.List().Select(Summary).ToList()));
        app.MapGet("/api/runs/{id}", (string id) => WithRun(store, id, allowPrefix: true, run => Results.Ok(Summary(run))));
        // A trial's metrics log, oldest first, in pages: events with a sequence number above `after` (what
        // `orchestrator logs --cluster` reads, and polls with --follow).
        app.MapGet("/api/runs/{id}/trials/{trial}/events", (string id, string trial, long? after, int? limit) => WithRun(store, id, allowPrefix: true, run =>
        {
            if (!StoragePaths.IsSafeName(trial) || !run.Manifest.Trials.Any(t => t.Id == trial))
                return Error(StatusCodes.Status404NotFound, $"run {run.Id} has no trial '{Shown(trial)}'");
            if (limit is < 1 or > MaxEventsPerPage) return Error(StatusCodes.Status400BadRequest, $"limit must be between 1 and {MaxEventsPerPage}");
            if (after is < 0) return Error(StatusCodes.Status400BadRequest, "after must be a sequence number >= 0");
            return Results.Ok(run.Trial(trial).Events(after ?? 0, limit ?? MaxEventsPerPage));
        }));
        // Cancel stops training: only the exact id will do.
        app.MapPost("/api/runs/{id}/cancel", (string id) => WithRun(store, id, allowPrefix: false, run =>
        {
            if (run.Trials.All(t => t.ReadStatus().State is TrialState.Completed or TrialState.Failed or TrialState.Cancelled))
                return Error(StatusCodes.Status409Conflict, $"run {run.Id} has finished; there is nothing to cancel");
            run.RequestCancel();
            coordinator.Manager.Tell(new CancelRun(run.Id));
            return Results.Ok(Summary(run));
        }));
        app.MapPost("/api/runs/{id}/resume", async (string id, HttpRequest http) =>
        {
            var (request, problem) = await ReadResumeAsync(http, options.MaxBodyBytes);
            return problem ?? Resume(coordinator, store, id, request);
        });
        if (dashboard is not null) Dashboard.DashboardRoutes.Map(app, dashboard);
        app.MapFallback((HttpContext context) => Error(StatusCodes.Status404NotFound,
            $"no such endpoint: {context.Request.Method} (see docs/operations.md for the API)"));
        return app;
    }

    /// <summary>Resumes a run (or one trial, with changed settings) and answers once the coordinator has queued it.</summary>
    private static IResult Resume(CoordinatorHost coordinator, RunStore store, string id, ResumeRequest? request) =>
        WithRun(store, id, allowPrefix: true, run =>
        {
            IReadOnlyList<TrialRecord> targets;
            try
            {
                targets = run.PrepareResume(request?.Trial, request?.Set ?? []);
            }
            catch (Exception e) when (e is ArgumentException or SpecException)
            {
                return Error(StatusCodes.Status400BadRequest, e.Message);
            }
            if (run.CancelRequested) run.ClearCancel();
            // Answer once the coordinator has queued the trials (their statuses say pending by then), so a follower never
            // reads the previous attempt's cancelled or failed outcome as this resume's.
            try
            {
                coordinator.Manager.Ask<RunAccepted>(new SubmitRun(run.Id, request?.Trial is null ? null : targets[0].Id), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is Akka.Actor.AskTimeoutException or ArgumentException)
            {
                return Error(StatusCodes.Status503ServiceUnavailable, $"the coordinator did not take run {run.Id}: {e.Message}");
            }
            return Results.Ok(Summary(run));
        });

    public static RunSummary Summary(RunRecord run) =>
        new(run.Id, run.Manifest.Experiment, run.Manifest.CreatedAt, run.Statuses(),
            run.Trials.ToDictionary(t => t.Id, t => t.Attempts(), StringComparer.Ordinal));

    /// <summary>Errors quote what was sent (a run id, a key, U+0000) readably: no \u escapes for +, ' or &lt;.</summary>
    private static readonly JsonSerializerOptions ErrorJson = new(RunStore.Json) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static IResult Error(int status, string message) => Results.Json(new ApiError(message), ErrorJson, statusCode: status);

    internal static bool HasToken(HttpRequest request, byte[] token)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        var given = Encoding.UTF8.GetBytes(header[scheme.Length..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, token);
    }

    /// <summary>The request body, read to at most <paramref name="limit"/> bytes; or the error to answer.</summary>
    private static async Task<(MemoryStream Body, IResult? Problem)> ReadBodyAsync(HttpRequest http, long limit)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        int n;
        while ((n = await http.Body.ReadAsync(chunk)) > 0)
        {
            if (buffer.Length + n > limit)
                return (buffer, Error(StatusCodes.Status413PayloadTooLarge, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the request body is larger than {limit:N0} bytes")));
            buffer.Write(chunk, 0, n);
        }
        return (buffer, null);
    }

    /// <summary>A resume's optional body (no body: resume every unfinished trial as it was); or the error to answer.</summary>
    private static async Task<(ResumeRequest? Request, IResult? Problem)> ReadResumeAsync(HttpRequest http, long limit)
    {
        var (buffer, tooLarge) = await ReadBodyAsync(http, limit);
        if (tooLarge is not null) return (null, tooLarge);
        if (buffer.Length == 0) return (null, null);
        if (!IsJson(http.ContentType))
            return (null, Error(StatusCodes.Status415UnsupportedMediaType, "the request body must be application/json"));
        try
        {
            return (JsonSerializer.Deserialize<ResumeRequest>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), SubmitJson), null);
        }
        catch (JsonException)
        {
            return (null, Error(StatusCodes.Status400BadRequest, "the request body is not a resume in JSON ({\"trial\": \"ID\", \"set\": [\"KEY=VALUE\"]})"));
        }
    }

    /// <summary>The submit body, read to at most <paramref name="limit"/> bytes; or the error to answer.</summary>
    private static async Task<(SubmitRequest? Request, IResult? Problem)> ReadSubmitAsync(HttpRequest http, long limit)
    {
        if (http.ContentLength > limit)
            return (null, Error(StatusCodes.Status413PayloadTooLarge, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the request body is {http.ContentLength:N0} bytes; at most {limit:N0} are accepted")));
        if (!IsJson(http.ContentType))
            return (null, Error(StatusCodes.Status415UnsupportedMediaType, "the request body must be application/json"));
        var (buffer, tooLarge) = await ReadBodyAsync(http, limit);
        if (tooLarge is not null) return (null, tooLarge);
        SubmitRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<SubmitRequest>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), SubmitJson);
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1}{(e.Path is { Length: > 1 } p ? ", at " + p : "")})" : "";
            var what = e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "has a field this server does not know" : "is not a submission in JSON";
            return (null, Error(StatusCodes.Status400BadRequest, $"the request body {what}{where}"));
        }
        if (request is null) return (null, Error(StatusCodes.Status400BadRequest, "the request body is empty (null)"));
        var missing = new List<string>();
        if (request.Experiment is null) missing.Add("experiment");
        if (request.Source is null) missing.Add("source");
        if (request.ExperimentYaml is null) missing.Add("experiment_yaml");
        if (request.Trials is null) missing.Add("trials");
        else if (request.Trials.Any(t => t is null || t.Id is null || t.SpecYaml is null || t.Overrides is null)) missing.Add("trials[].id/spec_yaml/overrides");
        if (missing.Count > 0)
            return (null, Error(StatusCodes.Status400BadRequest, $"the submission lacks {string.Join(", ", missing)}"));
        return (request, null);
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.Split(';')[0].Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase);

    private static async Task<IResult> SubmitAsync(CoordinatorHost coordinator, RunStore store, ApiOptions options, SubmitRequest request)
    {
        if (!StoragePaths.IsSafeName(request.Experiment))
            return Error(StatusCodes.Status400BadRequest, $"experiment must match [a-z0-9][a-z0-9_-]* (at most {StoragePaths.MaxNameLength} characters)");
        if (request.Source.Length > MaxSourceLength || request.Source.Any(char.IsControl))
            return Error(StatusCodes.Status400BadRequest, $"source must be a file name of at most {MaxSourceLength} characters without control characters");
        if (request.Trials.Count == 0) return Error(StatusCodes.Status400BadRequest, "the submission has no trials");
        var badId = request.Trials.FirstOrDefault(t => !StoragePaths.IsSafeName(t.Id));
        if (badId is not null)
            return Error(StatusCodes.Status400BadRequest, $"trial {request.Trials.ToList().IndexOf(badId)}: id must match [a-z0-9][a-z0-9_-]* (at most {StoragePaths.MaxNameLength} characters)");
        if (request.Trials.Select(t => t.Id).Distinct(StringComparer.Ordinal).Count() != request.Trials.Count)
            return Error(StatusCodes.Status400BadRequest, "trial ids must be unique");
        try
        {
            // The experiment as submitted is kept in the run folder: it must be an experiment file, not any bytes.
            var experiment = ExperimentLoader.Parse(request.ExperimentYaml, request.Source);
            if (experiment.Name != request.Experiment)
                return Error(StatusCodes.Status400BadRequest, $"experiment_yaml names the experiment '{Shown(experiment.Name)}', the submission '{request.Experiment}'");
            var trials = request.Trials.Select(t => new Trial(t.Id, t.Index, ExperimentLoader.Parse(t.SpecYaml, request.Source), t.Overrides)).ToList();
            if (trials.FirstOrDefault(t => t.Spec.Name != request.Experiment) is { } stray)
                return Error(StatusCodes.Status400BadRequest, $"trial {stray.Id}: its spec names the experiment '{Shown(stray.Spec.Name)}', the submission '{request.Experiment}'");
            foreach (var trial in trials)
                if (DataProblem(trial, options.DataRoots) is { } problem)
                    return Error(StatusCodes.Status400BadRequest, problem);
            var run = store.Create(trials[0].Spec with { Name = request.Experiment, SourceFile = request.Source }, trials, request.ExperimentYaml,
                request.Trials.ToDictionary(t => t.Id, t => t.SpecYaml, StringComparer.Ordinal));
            var accepted = await coordinator.Manager.Ask<RunAccepted>(new SubmitRun(run.Id), TimeSpan.FromSeconds(30));
            return Results.Ok(new SubmitResponse(run.Id, accepted.Trials));
        }
        catch (SpecException e)
        {
            return Error(StatusCodes.Status400BadRequest, e.Message);
        }
        catch (ArgumentException e)
        {
            return Error(StatusCodes.Status400BadRequest, e.Message);
        }
    }

    /// <summary>
    /// Workers read a trial's data by path, so a submitted spec may only name data under the served data folders;
    /// the answer names the key and the path as submitted, never the folders or anything read from a file.
    /// </summary>
    private static string? DataProblem(Trial trial, IReadOnlyList<string> roots)
    {
        foreach (var (key, patterns) in new[] { ("data.train", trial.Spec.Data.Train), ("data.eval", trial.Spec.Data.Eval) })
        {
            // Shards in blob storage are read with the workers' own credentials, never through this server's folders.
            foreach (var pattern in patterns.Where(p => !ShardSources.IsBlobPattern(p)))
            {
                if (!IsUnderDataRoot(pattern, roots))
                    return $"trial {trial.Id}: {key}: {Shown(pattern)} is not under the data folders this server reads (serve --data-root)";
            }
        }
        // A checkpoints folder given by path is read by the workers like data (RUN/TRIAL names stay in the runs folder).
        foreach (var (key, source) in new[] { ("model.init_from", trial.Spec.Model.InitFrom), ("distill.teacher", trial.Spec.Distill.Teacher) })
        {
            if (source is not null && source.StartsWith('/') && !IsUnderDataRoot(source, roots))
                return $"trial {trial.Id}: {key}: {Shown(source)} is not under the data folders this server reads (serve --data-root)";
        }
        return null;
    }

    private static bool IsUnderDataRoot(string pattern, IReadOnlyList<string> roots)
    {
        if (!Path.IsPathFullyQualified(pattern) || pattern.Contains('\0')) return false;
        if (pattern.Split('/', '\\').Contains("..")) return false;
        // The folder part without wildcards is what the worker starts from; a link there must not lead out either.
        var literal = pattern;
        var wild = pattern.IndexOfAny(['*', '?', '[']);
        if (wild >= 0) literal = Path.GetDirectoryName(pattern[..wild] + "x") ?? "/";
        var full = Path.GetFullPath(literal);
        var resolved = Resolve(full);
        return roots.Any(root => (StoragePaths.IsUnder(root, full) || Path.GetFullPath(root) == full)
                                 && (StoragePaths.IsUnder(Resolve(Path.GetFullPath(root)), resolved) || Resolve(Path.GetFullPath(root)) == resolved));
    }

    /// <summary>The path with every symbolic link on its way followed (as far as it exists).</summary>
    private static string Resolve(string path)
    {
        var current = Path.GetPathRoot(path)!;
        foreach (var part in path[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            try
            {
                if (info.Exists && info.LinkTarget is not null)
                    next = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? next;
            }
            catch (IOException)
            {
                return "/"; // a link loop: outside every root
            }
            current = next;
        }
        return current;
    }

    private static string Shown(string text) => text.Length <= 200 ? text : text[..200] + "...";

    private static IResult WithRun(RunStore store, string id, bool allowPrefix, Func<RunRecord, IResult> action)
    {
        if (!StoragePaths.IsSafeName(id) && !(allowPrefix && id == "latest"))
            return Error(StatusCodes.Status400BadRequest, "a run id must match [a-z0-9][a-z0-9_-]*");
        RunRecord? run;
        if (id == "latest")
            run = store.List().LastOrDefault();
        else
        {
            run = store.FindExact(id);
            if (run is null && allowPrefix)
            {
                var matches = store.FindByPrefix(id);
                if (matches.Count > 1)
                    return Error(StatusCodes.Status409Conflict, $"'{id}' is the start of {matches.Count} run ids; give the full id");
                run = matches.SingleOrDefault();
            }
        }
        return run is null
            ? Error(StatusCodes.Status404NotFound, allowPrefix ? $"no run '{id}'" : $"no run with the exact id '{id}' (cancel takes the full run id)")
            : action(run);
    }
}
