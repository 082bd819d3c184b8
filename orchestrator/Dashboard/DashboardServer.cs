using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Training.Orchestrator.Api;
using Training.Orchestrator.State;

namespace Training.Orchestrator.Dashboard;

/// <summary>What cancel and resume do where the dashboard runs on its own port: an error sentence, or null when done.</summary>
public sealed record RunActions(Func<RunRecord, string?> Cancel, Func<RunRecord, string?> Resume)
{
    /// <summary>
    /// <c>orchestrator dashboard</c> without a cluster: cancel leaves the marker the submitting process turns into a
    /// cancel (as <c>orchestrator cancel</c> does); resuming needs something to run the trials.
    /// </summary>
    public static RunActions RunFolderOnly { get; } = new(run =>
    {
        run.RequestCancel();
        return null;
    }, run => $"this dashboard has no cluster to run trials on: resume with 'orchestrator resume {run.Id}' (or from the dashboard of 'orchestrator serve')");
}

/// <summary>
/// The dashboard on a port of its own (<c>orchestrator dashboard</c>, <c>serve --dashboard-port</c>): the pages and
/// their data (reads open unless <paramref name="publicRead"/> is false), plus the API's cancel and resume routes,
/// which always need the bearer token.
/// </summary>
public static class DashboardServer
{
    public static WebApplication Build(RunStore store, string host, int port, string token, bool publicRead, RunActions actions)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{host}:{port}");
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 64 * 1024;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
        });
        var app = builder.Build();
        var tokenBytes = Encoding.UTF8.GetBytes(token);
        app.Use(async (context, next) =>
        {
            var isRead = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
            var open = isRead && (publicRead || DashboardRoutes.IsPublicAsset(context.Request.Path));
            if (!open && !ApiServer.HasToken(context.Request, tokenBytes))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await context.Response.WriteAsJsonAsync(new { error = "missing or wrong API token: this action needs the token (serve printed it; it is in RUNS/.api-token)" });
                return;
            }
            await next(context);
        });
        var data = new DashboardData(store);
        DashboardRoutes.Map(app, data);
        app.MapPost("/api/runs/{id}/cancel", (string id) => Act(data, id, run =>
        {
            if (run.Trials.All(t => DashboardData.ReadStatus(t)?.State is TrialState.Completed or TrialState.Failed or TrialState.Cancelled))
                return $"run {run.Id} has finished; there is nothing to cancel";
            return actions.Cancel(run);
        }));
        app.MapPost("/api/runs/{id}/resume", (string id) => Act(data, id, actions.Resume));
        return app;
    }

    private static IResult Act(DashboardData data, string id, Func<RunRecord, string?> action)
    {
        var run = data.FindRun(id);
        if (run is null) return Results.Json(new { error = $"no run with the exact id '{id}'" }, statusCode: StatusCodes.Status404NotFound);
        var problem = action(run);
        return problem is null
            ? Results.Json(new { id = run.Id, cancel_requested = run.CancelRequested })
            : Results.Json(new { error = problem }, statusCode: StatusCodes.Status409Conflict);
    }
}
