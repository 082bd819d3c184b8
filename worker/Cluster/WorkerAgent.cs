using Akka.Actor;
using Akka.Event;
using Training.Shared.Messages;
using Training.Worker.Teaching;
using Training.Worker.Training;

namespace Training.Worker.Cluster;

/// <summary>Asks the agent to stop its ranks at their next step boundary (with a checkpoint) before the worker leaves;
/// answered with the number of ranks asked.</summary>
public sealed record DrainWorker(string Reason);

/// <summary>
/// The worker's face to the cluster: registers with the coordinator (through the singleton proxy, retrying until it
/// answers), hosts one <see cref="TrainerRank"/> child per assigned rank and one <see cref="TeacherHost"/> per trial it
/// serves a teacher for, and relays control messages to them. It
/// watches the coordinator it registered with: when that one goes away (the singleton moved or the orchestrator
/// restarted) it registers again, and if no coordinator answers within <see cref="CoordinatorGrace"/> (or at once, when
/// no member left in its cluster could host the coordinator) it asks the process to join the seed again with a fresh node.
/// </summary>
public sealed class WorkerAgent : ReceiveActor, IWithTimers
{
    /// <summary>How long a worker waits for a coordinator to answer before it rejoins the seed from scratch: longer
    /// than a singleton hand-over, short enough that a restarted orchestrator gets its workers back in seconds.</summary>
    public static readonly TimeSpan CoordinatorGrace = TimeSpan.FromSeconds(15);

    private sealed record Register;

    private readonly string _workerId;
    private readonly string _host;
    private readonly string _role;
    private readonly string _device;
    private readonly int _threads;
    private readonly IActorRef _coordinatorProxy;
    private readonly Action<WorkerStop> _shutdown;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _ranks = new();
    private readonly Dictionary<string, IActorRef> _teachers = new();
    private IActorRef? _coordinator;
    private DateTime _unregisteredSince = DateTime.UtcNow;
    private bool _draining;

    /// <summary>Where the coordinator it lost ran (null while it has one, or is still waiting for its first answer).</summary>
    private Address? _lostCoordinatorAt;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string workerId, string host, string role, string device, int threads, IActorRef coordinatorProxy, Action<WorkerStop> shutdown) =>
        Akka.Actor.Props.Create(() => new WorkerAgent(workerId, host, role, device, threads, coordinatorProxy, shutdown));

    public WorkerAgent(string workerId, string host, string role, string device, int threads, IActorRef coordinatorProxy, Action<WorkerStop> shutdown)
    {
        _workerId = workerId;
        _host = host;
        _role = role;
        _device = device;
        _threads = threads;
        _coordinatorProxy = coordinatorProxy;
        _shutdown = shutdown;

        Receive<Register>(_ =>
        {
            // Only time spent as a member counts: joining has its own timeout.
            var cluster = Akka.Cluster.Cluster.Get(Context.System);
            var waited = DateTime.UtcNow - _unregisteredSince;
            if (cluster.SelfMember.Status != Akka.Cluster.MemberStatus.Up) _unregisteredSince = DateTime.UtcNow;
            else if (waited > CoordinatorGrace)
            {
                Timers.Cancel("register");
                _shutdown(new WorkerStop($"no coordinator answered for {CoordinatorGrace.TotalSeconds:0} s", Rejoin: true));
                return;
            }
            else if (_lostCoordinatorAt is { } lostAt && waited > TimeSpan.FromSeconds(1) && !CoordinatorNodeUp(cluster, lostAt))
            {
                // No other node of this cluster can host the coordinator (the orchestrator died, stopped or restarted on
                // the same address): none will answer here, so join the seed again now rather than after the hand-over grace.
                Timers.Cancel("register");
                _shutdown(new WorkerStop("the coordinator's node left the cluster", Rejoin: true));
                return;
            }
            _coordinatorProxy.Tell(new RegisterWorker(_workerId, _host, _role, _device, _threads));
        });
        Receive<WorkerRegistered>(_ =>
        {
            Timers.Cancel("register");
            _lostCoordinatorAt = null;
            if (Sender.Equals(_coordinator)) return;
            if (_coordinator is not null) Context.Unwatch(_coordinator);
            _coordinator = Sender;
            Context.Watch(_coordinator);
            _log.Info("worker {0} registered with the coordinator", _workerId);
            if (_draining) _coordinator.Tell(new WorkerDraining(_workerId));
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
            // Assigned while draining (the coordinator had not heard yet): stop it at once, before any step.
            if (_draining) rank.Tell(new StopRank(assign.TrialId, assign.Generation, Abort: false, "the worker is shutting down"));
        });
        Receive<StartTraining>(m => Forward(m.TrialId, m.Generation, m));
        Receive<TeachersChanged>(m => Forward(m.TrialId, m.Generation, m));
        Receive<AssignTeacher>(assign =>
        {
            if (_teachers.ContainsKey(assign.TrialId)) return;
            Console.WriteLine($"worker {_workerId}: teacher of trial {assign.TrialId} ({assign.Teacher})");
            var teacher = Context.ActorOf(TeacherHost.Props(assign, Sender, _workerId, _host, _device),
                $"teacher-{Uri.EscapeDataString(assign.TrialId)}");
            Context.Watch(teacher);
            _teachers[assign.TrialId] = teacher;
        });
        Receive<StopTeacher>(m =>
        {
            if (_teachers.Remove(m.TrialId, out var teacher)) Context.Stop(teacher);
        });
        Receive<StopRank>(m => Forward(m.TrialId, m.Generation, m));
        Receive<Terminated>(t =>
        {
            if (t.ActorRef.Equals(_coordinator))
            {
                // The coordinator moved or its node died: find the new one through the proxy.
                _log.Warning("worker {0}: lost the coordinator; registering again", _workerId);
                _lostCoordinatorAt = _coordinator.Path.Address;
                _coordinator = null;
                _unregisteredSince = DateTime.UtcNow;
                Timers.StartPeriodicTimer("register", new Register(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
                return;
            }
            foreach (var key in _ranks.Where(kv => kv.Value.Equals(t.ActorRef)).Select(kv => kv.Key).ToList()) _ranks.Remove(key);
            foreach (var key in _teachers.Where(kv => kv.Value.Equals(t.ActorRef)).Select(kv => kv.Key).ToList()) _teachers.Remove(key);
        });
        Receive<DrainWorker>(m =>
        {
            _draining = true;
            _log.Info("draining: {0}", m.Reason);
            _coordinator?.Tell(new WorkerDraining(_workerId));
            foreach (var (key, rank) in _ranks)
            {
                var slash = key.LastIndexOf('/');
                rank.Tell(new StopRank(key[..slash], int.Parse(key[(slash + 1)..]), Abort: false, m.Reason));
            }
            Sender.Tell(_ranks.Count);
        });
        Receive<ShutdownWorker>(m =>
        {
            _log.Info("shutdown requested: {0}", m.Reason);
            _shutdown(new WorkerStop(m.Reason, Rejoin: false));
        });
    }

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("register", new Register(), TimeSpan.Zero, TimeSpan.FromSeconds(1));

    private static string RankKey(string trialId, int generation) => $"{trialId}/{generation}";

    /// <summary>Whether a reachable member that is up, other than the one at <paramref name="lost"/>, has the coordinator
    /// role (the singleton could move there). The lost one's node may still look up: a restarted orchestrator answers
    /// its heartbeats from the same address.</summary>
    private static bool CoordinatorNodeUp(Akka.Cluster.Cluster cluster, Address lost)
    {
        var state = cluster.State;
        return state.Members.Any(m => m.Status == Akka.Cluster.MemberStatus.Up && m.HasRole(global::Training.Shared.Cluster.ClusterHosting.CoordinatorRole)
                                      && !state.Unreachable.Contains(m) && !m.Address.Equals(lost));
    }

    private void Forward(string trialId, int generation, object message)
    {
        if (_ranks.TryGetValue(RankKey(trialId, generation), out var rank)) rank.Forward(message);
        else _log.Warning("dropping {0} for unknown or stale rank {1} generation {2}", message.GetType().Name, trialId, generation);
    }
}
