using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Training.Shared.Cluster;

namespace Training.Worker.Cluster;

/// <summary>Why a worker node stopped; <paramref name="Rejoin"/> when the process should join the seed again.</summary>
public sealed record WorkerStop(string Reason, bool Rejoin);

/// <summary>A worker node: joins the cluster through the seed and hosts a <see cref="WorkerAgent"/>.</summary>
public sealed class WorkerHost : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly TaskCompletionSource<WorkerStop> _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private WorkerHost(IHost host, string workerId)
    {
        _host = host;
        WorkerId = workerId;
    }

    public string WorkerId { get; }

    public ActorSystem System => _host.Services.GetRequiredService<ActorSystem>();

    /// <summary>Completes when the coordinator asks this worker to shut down, or when this node lost the coordinator
    /// (removed from the cluster, or no coordinator answering): then <see cref="WorkerStop.Rejoin"/> is true.</summary>
    public Task<WorkerStop> Stopped => _stopped.Task;

    /// <summary>The worker's agent, for the drain on SIGTERM.</summary>
    public IActorRef Agent { get; private set; } = ActorRefs.Nobody;

    public static async Task<WorkerHost> StartAsync(ClusterNodeSettings node, string workerId, string device, int threads)
    {
        WorkerHost? self = null;
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddAkka(ClusterHosting.SystemName(node.Secret), akka =>
        {
            akka.WithTrainingCluster(node)
                .WithSingletonProxy<ExperimentManagerKey>(ClusterHosting.ManagerName, new ClusterSingletonOptions { Role = ClusterHosting.CoordinatorRole })
                .WithActors((system, registry) =>
                {
                    var proxy = registry.Get<ExperimentManagerKey>();
                    system.ActorOf(WorkerAgent.Props(workerId, node.Host, node.Role, device, threads, proxy,
                        stop => self?._stopped.TrySetResult(stop)), "worker");
                });
        });
        var app = builder.Build();
        self = new WorkerHost(app, workerId);
        await app.StartAsync();
        self.Agent = await self.System.ActorSelection("/user/worker").ResolveOne(TimeSpan.FromSeconds(10));
        // Removed means the cluster downed this node (for example the coordinator died and keep-oldest downed the side
        // without it): the worker process lives on and joins the seed again with a fresh node.
        Akka.Cluster.Cluster.Get(self.System).RegisterOnMemberRemoved(() => self._stopped.TrySetResult(new WorkerStop("removed from the cluster", Rejoin: true)));
        _ = self.System.WhenTerminated.ContinueWith(_ => self._stopped.TrySetResult(new WorkerStop("actor system terminated", Rejoin: true)), TaskScheduler.Default);
        return self;
    }

    /// <summary>True once this node is Up in the cluster, false if that did not happen within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitUntilJoinedAsync(TimeSpan timeout)
    {
        var joined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Akka.Cluster.Cluster.Get(System).RegisterOnMemberUp(() => joined.TrySetResult());
        return await Task.WhenAny(joined.Task, Task.Delay(timeout)) == joined.Task;
    }

    public async ValueTask DisposeAsync()
    {
        var cluster = Akka.Cluster.Cluster.Get(System);
        try
        {
            // Only a member can leave; a worker that never joined just stops.
            if (cluster.SelfMember.Status == Akka.Cluster.MemberStatus.Up)
            {
                using var leaveTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await cluster.LeaveAsync(leaveTimeout.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or TaskCanceledException)
        {
            // The coordinator is gone already; stopping is all that is left.
        }
        await _host.StopAsync();
        _host.Dispose();
    }
}
