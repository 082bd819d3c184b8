using Akka.Actor;
using Akka.Event;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;
using Training.Shared.Spec;

namespace Training.Orchestrator.Scheduling;

/// <summary>A trial's training event, published on the coordinator's event stream for local observers.</summary>
public sealed record TrialEventPublished(string RunId, TrainingEvent Event);

/// <summary>Every trial of a run has finished (completed, cancelled or failed).</summary>
public sealed record RunFinished(string RunId);

/// <summary>
/// The coordinator (a cluster singleton): keeps the worker registry, queues submitted trials, places each trial's
/// ranks on free workers, hands out the collective rendezvous, records metrics into the run store, and restarts a
/// trial from its latest checkpoint (with a new generation) when one of its workers dies.
/// </summary>
public sealed class ExperimentManager : ReceiveActor
{
    public const int MaxRestarts = 3;

    private sealed record Worker(string Id, IActorRef Ref, string Host, string Role)
    {
        public string? Trial { get; set; }
    }

    /// <param name="specYaml">The trial's stored spec, read once: every generation's ranks get this same text.</param>
    private sealed class Placement(RunRecord run, TrialRecord trial, ExperimentSpec spec, string specYaml, int generation, int restarts)
    {
        public RunRecord Run { get; } = run;
        public TrialRecord Trial { get; } = trial;
        public ExperimentSpec Spec { get; } = spec;
        public string SpecYaml { get; } = specYaml;
        public int Generation { get; set; } = generation;
        public int Restarts { get; set; } = restarts;
        public List<Worker> Ranks { get; } = new();
        public string?[] Endpoints { get; set; } = [];
        public byte[]? NcclUniqueId { get; set; }
        public Dictionary<int, RankFinished> Finished { get; } = new();
        public bool Cancelled { get; set; }
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, Worker> _workers = new();
    private readonly List<Placement> _queue = new();
    private readonly Dictionary<string, Placement> _running = new();
    private readonly Dictionary<string, RunRecord> _runs = new();

    public static Props Props() => Akka.Actor.Props.Create(() => new ExperimentManager());

    public ExperimentManager()
    {
        Receive<RegisterWorker>(Register);
        Receive<Terminated>(t => WorkerLost(t.ActorRef));
        Receive<SubmitRun>(Submit);
        Receive<CancelRun>(Cancel);
        Receive<RankListening>(Listening);
        Receive<RankEvent>(RankEventReceived);
        Receive<RankFinished>(Finished);
        Receive<ShutdownWorkers>(m =>
        {
            foreach (var worker in _workers.Values) worker.Ref.Tell(new ShutdownWorker(m.Reason));
            Sender.Tell(new WorkersShutDown(_workers.Count));
        });
    }

    private void Register(RegisterWorker m)
    {
        if (!_workers.ContainsKey(m.WorkerId))
        {
            _workers[m.WorkerId] = new Worker(m.WorkerId, Sender, m.Host, m.Role);
            Context.Watch(Sender);
            _log.Info("worker {0} joined ({1}, {2})", m.WorkerId, m.Role, m.Device);
        }
        Sender.Tell(new WorkerRegistered(m.WorkerId));
        Schedule();
    }

    private void Submit(SubmitRun m)
    {
        RunRecord run;
        try
        {
            run = RunRecord.Load(m.RunDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidDataException)
        {
            // A bad submission must not restart the manager: that would forget every worker and running trial.
            Sender.Tell(new Status.Failure(new ArgumentException($"cannot read run folder {m.RunDirectory}: {e.Message}", e)));
            return;
        }
        _runs[run.Id] = run;
        var added = 0;
        foreach (var trial in run.Trials)
        {
            var status = trial.ReadStatus();
            if (status.State == TrialState.Completed || _running.ContainsKey(trial.Id) || _queue.Any(p => p.Trial.Id == trial.Id)) continue;
            var (spec, specYaml) = trial.LoadSpec();
            _queue.Add(new Placement(run, trial, spec, specYaml, generation: 1, restarts: 0));
            added++;
        }
        Sender.Tell(new RunAccepted(run.Id, added));
        if (added == 0) Context.System.EventStream.Publish(new RunFinished(run.Id));
        Schedule();
    }

    private void Cancel(CancelRun m)
    {
        foreach (var queued in _queue.Where(p => p.Run.Id == m.RunId).ToList())
        {
            _queue.Remove(queued);
            queued.Trial.Record(new TrialFinished(queued.Trial.Id, TrialOutcome.Cancelled, queued.Trial.ReadStatus().Step, null));
        }
        foreach (var placement in _running.Values.Where(p => p.Run.Id == m.RunId))
        {
            placement.Cancelled = true;
            foreach (var rank in placement.Ranks) rank.Ref.Tell(new StopRank(placement.Trial.Id, placement.Generation, Abort: false, "cancelled"));
        }
        CheckRunFinished(m.RunId);
    }

    /// <summary>Places queued trials, oldest first, while enough free trainer workers exist and each run stays
    /// within its max_concurrent_trials.</summary>
    private void Schedule()
    {
        foreach (var placement in _queue.ToList())
        {
            var resources = placement.Spec.Resources;
            var concurrent = _running.Values.Count(p => p.Run.Id == placement.Run.Id);
            if (concurrent >= resources.MaxConcurrentTrials) continue;
            // Elastic: as many ranks as are free, up to workers, and at least min_workers.
            var free = _workers.Values.Where(w => w.Trial is null && w.Role == ClusterHosting.TrainerRole).OrderBy(w => w.Id, StringComparer.Ordinal).Take(resources.Workers).ToList();
            if (free.Count < resources.MinimumWorkers) continue;
            _queue.Remove(placement);
            Place(placement, free);
        }
    }

    private void Place(Placement placement, List<Worker> workers)
    {
        placement.Ranks.Clear();
        placement.Ranks.AddRange(workers);
        placement.Endpoints = new string?[workers.Count];
        placement.NcclUniqueId = null;
        placement.Finished.Clear();
        _running[placement.Trial.Id] = placement;
        var entry = placement.Run.Manifest.Trials.Single(t => t.Id == placement.Trial.Id);
        for (var rank = 0; rank < workers.Count; rank++)
        {
            workers[rank].Trial = placement.Trial.Id;
            workers[rank].Ref.Tell(new AssignRank(placement.Run.Id, placement.Run.Dir, placement.Trial.Id, entry.Index, placement.Generation,
                rank, workers.Count, placement.SpecYaml, placement.Trial.SpecPath, placement.Trial.CheckpointPrefix, placement.Run.Manifest.Storage));
        }
        _log.Info("trial {0} generation {1} placed on {2}", placement.Trial.Id, placement.Generation, string.Join(", ", workers.Select(w => w.Id)));
    }

    private bool Current(string trialId, int generation, out Placement placement)
    {
        if (_running.TryGetValue(trialId, out placement!) && placement.Generation == generation) return true;
        _log.Warning("dropping a message for trial {0} generation {1}: not the current generation", trialId, generation);
        return false;
    }

    private void Listening(RankListening m)
    {
        if (!Current(m.TrialId, m.Generation, out var placement)) return;
        placement.Endpoints[m.Rank] = $"{m.Host}:{m.Port}";
        if (m.NcclUniqueId is not null) placement.NcclUniqueId = m.NcclUniqueId;
        if (placement.Endpoints.All(e => e is not null))
        {
            var start = new StartTraining(m.TrialId, m.Generation, placement.Endpoints.Select(e => e!).ToList(), placement.NcclUniqueId);
            foreach (var rank in placement.Ranks) rank.Ref.Tell(start);
        }
    }

    private void RankEventReceived(RankEvent m)
    {
        if (!Current(m.TrialId, m.Generation, out var placement)) return;
        var e = (TrainingEvent)MessagePackAkkaSerializer.Unpack(m.EventType, m.Payload);
        placement.Trial.Record(e);
        Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, e));
    }

    private void Finished(RankFinished m)
    {
        if (!Current(m.TrialId, m.Generation, out var placement)) return;
        placement.Finished[m.Rank] = m;
        if (m.Outcome == TrialOutcome.Failed && placement.Finished.Count < placement.Ranks.Count)
        {
            // One rank failed: the others are blocked in (or headed for) a collective. Abort them now.
            foreach (var (rank, index) in placement.Ranks.Select((r, i) => (r, i)).Where(x => !placement.Finished.ContainsKey(x.i)))
                rank.Ref.Tell(new StopRank(m.TrialId, m.Generation, Abort: true, $"rank {m.Rank} failed: {m.Error}"));
        }
        if (placement.Finished.Count < placement.Ranks.Count) return;

        foreach (var worker in placement.Ranks) worker.Trial = null;
        _running.Remove(m.TrialId);
        var failure = placement.Finished.Values.FirstOrDefault(f => f.Outcome == TrialOutcome.Failed);
        var outcome = failure is not null ? TrialOutcome.Failed
            : placement.Finished.Values.Any(f => f.Outcome == TrialOutcome.Cancelled) ? TrialOutcome.Cancelled
            : TrialOutcome.Completed;
        // A rank that failed before training (a bad shard at the start) reports step 0: keep the step already recorded.
        var step = Math.Max(placement.Finished.Values.Max(f => f.Step), placement.Trial.ReadStatus().Step);
        var finished = new TrialFinished(m.TrialId, outcome, step, failure?.Error);
        placement.Trial.Record(finished);
        Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, finished));
        CheckRunFinished(placement.Run.Id);
        Schedule();
    }

    private void WorkerLost(IActorRef actor)
    {
        var worker = _workers.Values.FirstOrDefault(w => w.Ref.Equals(actor));
        if (worker is null) return;
        _workers.Remove(worker.Id);
        if (worker.Trial is null || !_running.TryGetValue(worker.Trial, out var placement))
        {
            _log.Info("worker {0} left the cluster", worker.Id);
            return;
        }
        _log.Warning("worker {0} left the cluster while running trial {1}", worker.Id, worker.Trial);

        // The trial's group is broken: abort the surviving ranks, then run it again from its latest checkpoint
        // under a new generation, so anything the old ranks still send is ignored.
        foreach (var survivor in placement.Ranks.Where(r => r != worker))
        {
            survivor.Ref.Tell(new StopRank(placement.Trial.Id, placement.Generation, Abort: true, $"worker {worker.Id} was lost"));
            survivor.Trial = null;
        }
        _running.Remove(placement.Trial.Id);
        if (placement.Cancelled || placement.Restarts >= MaxRestarts)
        {
            var outcome = placement.Cancelled ? TrialOutcome.Cancelled : TrialOutcome.Failed;
            var finished = new TrialFinished(placement.Trial.Id, outcome, placement.Trial.ReadStatus().Step,
                outcome == TrialOutcome.Failed ? $"worker {worker.Id} was lost and the trial used its {MaxRestarts} restarts" : null);
            placement.Trial.Record(finished);
            Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, finished));
            CheckRunFinished(placement.Run.Id);
        }
        else
        {
            placement.Generation++;
            placement.Restarts++;
            _log.Warning("trial {0}: restarting as generation {1} from its latest checkpoint", placement.Trial.Id, placement.Generation);
            _queue.Insert(0, placement);
        }
        Schedule();
    }

    private void CheckRunFinished(string runId)
    {
        if (_queue.Any(p => p.Run.Id == runId) || _running.Values.Any(p => p.Run.Id == runId)) return;
        Context.System.EventStream.Publish(new RunFinished(runId));
    }
}
