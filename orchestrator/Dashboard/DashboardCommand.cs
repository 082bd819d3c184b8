using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Training.Orchestrator.Cli;
using Training.Orchestrator.Cluster;
using Training.Orchestrator.State;
using Training.Shared.Messages;

namespace Training.Orchestrator.Dashboard;

/// <summary><c>orchestrator dashboard</c>: the dashboard of a runs folder, with no cluster behind it.</summary>
public static class DashboardCommand
{
    public const int DefaultPort = 8090;

    internal static async Task<int> RunAsync(string? runs, string? state, string? host, int? port, string? tokenFileOption)
    {
        var store = RunStore.FromOption(runs, state: state);
        host ??= "127.0.0.1";
        var boundPort = port ?? DefaultPort;
        // The same token serve uses for this runs folder (or a configured one), so one token works for both.
        var token = ServeToken.Configured(tokenFileOption);
        var tokenFile = token is null ? ServeToken.Generate(store.Root, out token) : tokenFileOption;
        // Reads are open on the loopback interface only: bound anywhere else, run data needs the token too.
        var loopback = host == "localhost" || (System.Net.IPAddress.TryParse(host, out var ip) && System.Net.IPAddress.IsLoopback(ip));
        await using var app = DashboardServer.Build(store, host, boundPort, token, publicRead: loopback, RunActions.RunFolderOnly);
        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            throw new ArgumentException($"cannot serve the dashboard on http://{host}:{boundPort}: {e.Message} (choose another --port)", e);
        }
        var address = new Uri(app.Urls.First()).Authority;
        // The token itself is never printed here: the page asks for it (or takes it from a #token= fragment).
        Console.WriteLine($"dashboard: http://{address}{DashboardRoutes.Prefix}/ (runs in {store.Root})");
        Console.WriteLine(tokenFile is null
            ? $"cancel from the page needs the API token ($" + Api.ApiOptions.TokenVariable + ")"
            : $"cancel from the page needs the API token in {tokenFile}");
        var stop = new TaskCompletionSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        await stop.Task;
        await app.StopAsync();
        return 0;
    }

    /// <summary><c>serve --dashboard-port</c>: the dashboard on its own port, cancelling and resuming through the coordinator.</summary>
    public static WebApplication ForCluster(CoordinatorHost coordinator, RunStore store, string host, int port, string token, bool publicRead) =>
        DashboardServer.Build(store, host, port, token, publicRead, new RunActions(run =>
        {
            run.RequestCancel();
            coordinator.Manager.Tell(new CancelRun(run.Id));
            return null;
        }, run =>
        {
            if (run.CancelRequested) run.ClearCancel();
            coordinator.Manager.Tell(new SubmitRun(run.Id));
            return null;
        }));
}
