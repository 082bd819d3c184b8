using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Training.Orchestrator.Scheduling;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;

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

    /// <param name="store">The runs the coordinator reads submissions from and records state into.</param>
    /// <param name="recover">For <c>serve</c>: continue the store's unfinished runs on start.</param>
    /// <param name="tls">Mutual TLS for the cluster (workers then need certificates from the same authority).</param>
    public static async Task<CoordinatorHost> StartAsync(string host, int port, string secret, RunStore store, bool serializeAllMessages = false, bool recover = false,
        ClusterTls? tls = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddAkka(ClusterHosting.SystemName(secret), akka =>
        {
            akka.WithTrainingCluster(new ClusterNodeSettings(host, port, secret, ClusterHosting.CoordinatorRole, Seed: null, serializeAllMessages, tls))
                .WithSingleton<ExperimentManagerKey>(ClusterHosting.ManagerName, ExperimentManager.Props(store, recover),
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

    /// <summary>
    /// Submits a run and waits until all its trials have finished, relaying their events to
    /// <paramref name="observe"/>. Cancelling (Ctrl+C, or a cancel request recorded for the run) asks the trials to checkpoint and
    /// stop. <paramref name="problem"/> is polled: a non-null answer aborts the wait with that message.
    /// </summary>
    /// <param name="onlyTrial">Run only this trial of the run (a resume of one trial).</param>
    public async Task RunAsync(RunRecord run, Action<TrainingEvent> observe, CancellationToken cancel, Func<string?>? problem = null, string? onlyTrial = null)
    {
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var listener = System.ActorOf(Props.Create(() => new RunListener(run.Id, observe, finished)));
        try
        {
            var accepted = await Manager.Ask<RunAccepted>(new SubmitRun(run.Id, onlyTrial), TimeSpan.FromSeconds(30));
            if (accepted.Trials == 0) return;
            var cancelSent = false;
            while (!finished.Task.IsCompleted)
            {
                await Task.WhenAny(finished.Task, Task.Delay(250, CancellationToken.None));
                if (!cancelSent && (cancel.IsCancellationRequested || run.CancelRequested))
                {
                    Manager.Tell(new CancelRun(run.Id));
                    cancelSent = true;
                }
                if (!finished.Task.IsCompleted && problem?.Invoke() is { } message) throw new InvalidOperationException(message);
            }
        }
        finally
        {
            System.Stop(listener);
        }
    }

    /// <summary>Relays one run's events from the coordinator's event stream.</summary>
    private sealed class RunListener : ReceiveActor
    {
        public RunListener(string runId, Action<TrainingEvent> observe, TaskCompletionSource finished)
        {
            Receive<TrialEventPublished>(e => e.RunId == runId, e => observe(e.Event));
            Receive<RunFinished>(e => e.RunId == runId, _ => finished.TrySetResult());
        }

        protected override void PreStart()
        {
            Context.System.EventStream.Subscribe(Self, typeof(TrialEventPublished));
            Context.System.EventStream.Subscribe(Self, typeof(RunFinished));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }
}
