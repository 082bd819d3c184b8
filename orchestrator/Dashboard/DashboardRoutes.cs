using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Training.Orchestrator.State;

namespace Training.Orchestrator.Dashboard;

/// <summary>
/// The dashboard's routes: the page and its scripts under <c>/dashboard/</c> (public, they hold no data), read-only
/// JSON under <c>/dashboard/api/</c> and server-sent events for live updates. State changes are not here: the page
/// posts to the API's <c>/api/runs/{id}/cancel|resume</c> with the bearer token, and the host decides who may.
/// </summary>
public static class DashboardRoutes
{
    public const string Prefix = "/dashboard";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.Ordinal)
    {
        [".html"] = "text/html; charset=utf-8", [".js"] = "text/javascript; charset=utf-8", [".css"] = "text/css; charset=utf-8",
    };

    /// <summary>The files the page is made of, in the program's folder (copied there by the build).</summary>
    public static string AssetRoot => Path.Combine(AppContext.BaseDirectory, "dashboard");

    /// <summary>Requests that carry no run data and may be answered without the token: the page shell and its scripts.</summary>
    public static bool IsPublicAsset(PathString path) =>
        path == "/" || path == "/favicon.ico" || path == Prefix || (path.StartsWithSegments(Prefix, out var rest) && !rest.StartsWithSegments("/api"));

    public static void Map(IEndpointRouteBuilder app, DashboardData data)
    {
        app.MapGet("/", () => Results.Redirect(Prefix + "/"));
        // Routing matches "/dashboard" and "/dashboard/" alike: only the first is sent on.
        app.MapGet(Prefix, (HttpContext context) => context.Request.Path.Value!.EndsWith('/') ? Asset("index.html", vendor: false) : Results.Redirect(Prefix + "/"));
        app.MapGet("/favicon.ico", () => Results.NoContent());
        app.MapGet(Prefix + "/assets/{name}", (string name) => Asset(name, vendor: false));
        app.MapGet(Prefix + "/vendor/{name}", (string name) => Asset(name, vendor: true));
        // Page routes all get the same shell; the script reads the path.
        app.MapGet(Prefix + "/{**page}", (string? page) =>
            page is not null && page.StartsWith("api/", StringComparison.Ordinal) ? Error(404, "no such dashboard endpoint") : Asset("index.html", vendor: false));

        app.MapGet(Prefix + "/api/runs", () => Json(data.Runs()));
        app.MapGet(Prefix + "/api/runs/{id}", (string id) => WithRun(data, id, run => Json(data.Run(run))));
        app.MapGet(Prefix + "/api/runs/{id}/curves", (string id, string? metric, string? x, string? trials, int? buckets) => WithRun(data, id, run =>
        {
            if (buckets is < 1 or > 100_000) return Error(400, "buckets must be between 1 and 100000");
            var ids = string.IsNullOrEmpty(trials) ? null : trials.Split(',', StringSplitOptions.RemoveEmptyEntries);
            try
            {
                return CurvesResult(data.Curves(run, metric ?? "loss", x ?? "step", ids, buckets));
            }
            catch (ArgumentException e)
            {
                return Error(400, e.Message);
            }
        }));
        app.MapGet(Prefix + "/api/runs/{id}/trials/{trial}", (string id, string trial) => WithRun(data, id, run =>
            data.Trial(run, trial) is { } view ? Json(view) : Error(404, $"run {run.Id} has no trial '{Shown(trial)}'")));
        app.MapGet(Prefix + "/api/events", (HttpContext context) => Events(context, () => data.RunsSignature()));
        app.MapGet(Prefix + "/api/runs/{id}/events", (string id, HttpContext context) =>
        {
            var run = data.FindRun(id);
            return run is null ? Error(404, $"no run '{Shown(id)}'").ExecuteAsync(context) : Events(context, () => DashboardData.Signature(run));
        });
    }

    private static IResult Asset(string name, bool vendor)
    {
        // Only plain file names from the two folders; no paths.
        if (name.Contains('/') || name.Contains('\\') || name.StartsWith('.')) return Error(404, "no such file");
        var path = Path.Combine(AssetRoot, vendor ? "vendor" : "", name);
        if (!File.Exists(path))
            return vendor
                ? Error(404, $"chart library {name} is not installed beside the program: run 'make setup' (npm install in infra/) and build again")
                : Error(404, "no such file");
        var type = ContentTypes.GetValueOrDefault(Path.GetExtension(name), "application/octet-stream");
        return Results.File(path, type);
    }

    private static readonly JsonSerializerOptions PageJson = new(RunStore.JsonLine)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static IResult Json<T>(T value) => Results.Json(value, PageJson);

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, PageJson, statusCode: status);

    private static string Shown(string text) => text.Length <= 100 ? text : text[..100] + "...";

    private static IResult WithRun(DashboardData data, string id, Func<RunRecord, IResult> action)
    {
        if (!StoragePaths.IsSafeName(id)) return Error(400, "a run id must match [a-z0-9][a-z0-9_-]*");
        var run = data.FindRun(id);
        return run is null ? Error(404, $"no run '{id}'") : action(run);
    }

    /// <summary>Curves as compact JSON: 5 significant digits per value (a plot needs no more), NaN as null.</summary>
    public static byte[] CurvesJson(CurveSet set)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("metric", set.Metric);
            w.WriteString("x", set.X);
            w.WriteNumber("buckets", set.Buckets);
            w.WriteNumber("raw_points", set.RawPoints);
            WriteNumbers(w, "grid", set.Grid, "G7");
            w.WriteStartArray("curves");
            foreach (var curve in set.Curves)
            {
                w.WriteStartObject();
                w.WriteString("trial", curve.Trial);
                WriteNumbers(w, "y", curve.Y, "G5");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void WriteNumbers(Utf8JsonWriter w, string name, double[] values, string format)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
        {
            if (!double.IsFinite(v)) w.WriteNullValue();
            else w.WriteRawValue(v.ToString(format, CultureInfo.InvariantCulture), skipInputValidation: true);
        }
        w.WriteEndArray();
    }

    private static IResult CurvesResult(CurveSet set) => Results.Bytes(CurvesJson(set), "application/json");

    /// <summary>
    /// Server-sent events: an <c>update</c> event whenever the watched signature changes (checked each second), and a
    /// comment every 15 s so proxies keep the connection open. The page then fetches what it shows again.
    /// </summary>
    private static async Task Events(HttpContext context, Func<string> signature)
    {
        context.Response.Headers.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var aborted = context.RequestAborted;
        string? last = null;
        var quiet = 0;
        try
        {
            while (!aborted.IsCancellationRequested)
            {
                var now = signature();
                if (now != last)
                {
                    await context.Response.WriteAsync($"event: update\ndata: {{\"signature\":\"{now}\"}}\n\n", Encoding.UTF8, aborted);
                    await context.Response.Body.FlushAsync(aborted);
                    last = now;
                    quiet = 0;
                }
                else if (++quiet % 15 == 0)
                {
                    await context.Response.WriteAsync(": keep-alive\n\n", aborted);
                    await context.Response.Body.FlushAsync(aborted);
                }
                await Task.Delay(TimeSpan.FromSeconds(1), aborted);
            }
        }
        catch (OperationCanceledException)
        {
            // the page went away
        }
    }
}
