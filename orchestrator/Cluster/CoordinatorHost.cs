using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Training.Orchestrator.Scheduling;
using Training.Shared.Cluster;

namespace Training.Orchestrator.Cluster;

/// <summary>
/// The coordinator node: an Akka cluster seed hosting the experiment manager as a cluster singleton. Used in-process
/// by the embedded default and by <c>orchestrator serve</c>.
/// </summary>
public sealed class CoordinatorHost : IAsyncDisposable
{
    private readonly IHost _host;

    private CoordinatorHost(IHost host, ActorSystem system, IActorRef manager, string address)
    {
        _host = host;
        System = system;
        Manager = manager;
        Address = address;
    }

    public ActorSystem System { get; }

    /// <summary>The singleton proxy: messages reach the manager wherever it runs.</summary>
    public IActorRef Manager { get; }

    /// <summary>HOST:PORT that workers pass as --seed.</summary>
    public string Address { get; }

    public static async Task<CoordinatorHost> StartAsync(string host, int port, string secret, bool serializeAllMessages = false)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddAkka(ClusterHosting.SystemName(secret), akka =>
        {
            akka.WithTrainingCluster(new ClusterNodeSettings(host, port, secret, ClusterHosting.CoordinatorRole, Seed: null, serializeAllMessages))
                .WithSingleton<ExperimentManagerKey>(ClusterHosting.ManagerName, ExperimentManager.Props(),
                    new ClusterSingletonOptions { Role = ClusterHosting.CoordinatorRole }, createProxyToo: true);
        });
        var app = builder.Build();
        await app.StartAsync();
        var system = app.Services.GetRequiredService<ActorSystem>();
        var cluster = Akka.Cluster.Cluster.Get(system);
        // The first coordinator is its own seed.
        await cluster.JoinAsync(cluster.SelfAddress);
        var manager = await ActorRegistry.For(system).GetAsync<ExperimentManagerKey>();
        return new CoordinatorHost(app, system, manager, $"{cluster.SelfAddress.Host}:{cluster.SelfAddress.Port}");
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
