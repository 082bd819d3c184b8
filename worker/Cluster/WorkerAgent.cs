using Akka.Actor;
using Akka.Event;
using Training.Shared.Messages;
using Training.Worker.Training;

namespace Training.Worker.Cluster;

/// <summary>
/// The worker's face to the cluster: registers with the coordinator (through the singleton proxy, retrying until it
/// answers), hosts one <see cref="TrainerRank"/> child per assigned rank, and relays control messages to them.
/// </summary>
public sealed class WorkerAgent : ReceiveActor, IWithTimers
{
    private sealed record Register;

    private readonly string _workerId;
    private readonly string _host;
    private readonly string _role;
    private readonly string _device;
    private readonly int _threads;
    private readonly IActorRef _coordinatorProxy;
    private readonly Action<string> _shutdown;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _ranks = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string workerId, string host, string role, string device, int threads, IActorRef coordinatorProxy, Action<string> shutdown) =>
        Akka.Actor.Props.Create(() => new WorkerAgent(workerId, host, role, device, threads, coordinatorProxy, shutdown));

    public WorkerAgent(string workerId, string host, string role, string device, int threads, IActorRef coordinatorProxy, Action<string> shutdown)
    {
        _workerId = workerId;
        _host = host;
        _role = role;
        _device = device;
        _threads = threads;
        _coordinatorProxy = coordinatorProxy;
        _shutdown = shutdown;

        Receive<Register>(_ => _coordinatorProxy.Tell(new RegisterWorker(_workerId, _host, _role, _device, _threads)));
        Receive<WorkerRegistered>(_ =>
        {
            Timers.Cancel("register");
            _log.Info("worker {0} registered with the coordinator", _workerId);
        });
        Receive<AssignRank>(assign =>
        {
            var key = RankKey(assign.TrialId, assign.Generation);
            if (_ranks.ContainsKey(key)) return;
            Console.WriteLine($"worker {_workerId}: rank {assign.Rank}/{assign.WorldSize} of trial {assign.TrialId} (generation {assign.Generation})");
            // The coordinator's actor ref is the sender; ranks talk to it directly.
            var rank = Context.ActorOf(TrainerRank.Props(assign, Sender, _host, _device), $"rank-{Uri.EscapeDataString(assign.TrialId)}-g{assign.Generation}-r{assign.Rank}");
            Context.Watch(rank);
            _ranks[key] = rank;
        });
        Receive<StartTraining>(m => Forward(m.TrialId, m.Generation, m));
        Receive<StopRank>(m => Forward(m.TrialId, m.Generation, m));
        Receive<Terminated>(t =>
        {
            foreach (var key in _ranks.Where(kv => kv.Value.Equals(t.ActorRef)).Select(kv => kv.Key).ToList()) _ranks.Remove(key);
        });
        Receive<ShutdownWorker>(m =>
        {
            _log.Info("shutdown requested: {0}", m.Reason);
            _shutdown(m.Reason);
        });
    }

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("register", new Register(), TimeSpan.Zero, TimeSpan.FromSeconds(1));

    private static string RankKey(string trialId, int generation) => $"{trialId}/{generation}";

    private void Forward(string trialId, int generation, object message)
    {
        if (_ranks.TryGetValue(RankKey(trialId, generation), out var rank)) rank.Forward(message);
        else _log.Warning("dropping {0} for unknown or stale rank {1} generation {2}", message.GetType().Name, trialId, generation);
    }
}
