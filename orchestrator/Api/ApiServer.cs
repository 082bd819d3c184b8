using System.Text.Json;
using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Training.Orchestrator.Cluster;
using Training.Orchestrator.State;
using Training.Shared.Messages;
using Training.Shared.Spec;

namespace Training.Orchestrator.Api;

/// <summary>The HTTP API of <c>orchestrator serve</c>: submit, list, inspect and cancel runs.</summary>
public static class ApiServer
{
    public static WebApplication Build(CoordinatorHost coordinator, RunStore store, string host, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{host}:{port}");
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = RunStore.Json.PropertyNamingPolicy;
            foreach (var converter in RunStore.Json.Converters) o.SerializerOptions.Converters.Add(converter);
        });
        var app = builder.Build();

        app.MapPost("/api/runs", async (SubmitRequest request) =>
        {
            try
            {
                var trials = request.Trials.Select(t => new Trial(t.Id, t.Index, ExperimentLoader.Parse(t.SpecYaml, request.Source), t.Overrides)).ToList();
                if (trials.Count == 0) return Results.BadRequest(new ApiError("the submission has no trials"));
                var run = store.Create(trials[0].Spec with { Name = request.Experiment, SourceFile = request.Source }, trials, request.ExperimentYaml);
                var accepted = await coordinator.Manager.Ask<RunAccepted>(new SubmitRun(run.Dir), TimeSpan.FromSeconds(30));
                return Results.Ok(new SubmitResponse(run.Id, accepted.Trials));
            }
            catch (SpecException e)
            {
                return Results.BadRequest(new ApiError(e.Message));
            }
        });
        app.MapGet("/api/runs", () => store.List().Select(Summary).ToList());
        app.MapGet("/api/runs/{id}", (string id) => WithRun(store, id, run => Results.Ok(Summary(run))));
        app.MapPost("/api/runs/{id}/cancel", (string id) => WithRun(store, id, run =>
        {
            run.RequestCancel();
            coordinator.Manager.Tell(new CancelRun(run.Id));
            return Results.Ok(Summary(run));
        }));
        app.MapPost("/api/runs/{id}/resume", (string id) => WithRun(store, id, run =>
        {
            if (run.CancelRequested) run.ClearCancel();
            coordinator.Manager.Tell(new SubmitRun(run.Dir));
            return Results.Ok(Summary(run));
        }));
        return app;
    }

    public static RunSummary Summary(RunRecord run) =>
        new(run.Id, run.Manifest.Experiment, run.Manifest.CreatedAt, run.Trials.Select(t => t.ReadStatus()).ToList());

    private static IResult WithRun(RunStore store, string id, Func<RunRecord, IResult> action)
    {
        try
        {
            return action(store.Open(id));
        }
        catch (ArgumentException e)
        {
            return Results.NotFound(new ApiError(e.Message));
        }
    }
}
