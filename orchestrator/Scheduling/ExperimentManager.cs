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
/// The coordinator (a cluster singleton): keeps the worker registry and the queue of submitted trials, lends free
/// workers to trials, and records queue-level outcomes (a skipped stage, a cancel before placement) into the run store.
/// Each trial on the cluster is a child <see cref="TrialCoordinator"/> that owns its placement, rendezvous, generations
/// and restarts; this actor supervises them (a child that throws is restarted and its trial continues from its
/// checkpoint), so one trial's failure never touches another trial or the registry.
/// </summary>
public sealed class ExperimentManager : ReceiveActor, IWithTimers
{
    /// <summary>Look at the queue again (a suspect worker may be chosen again).</summary>
    private sealed record RetrySchedule;

    /// <summary>Specs read off the manager's thread, in queue order; Problem is why one could not be read.</summary>
    private sealed record SpecsLoaded(IReadOnlyList<(string Key, ExperimentSpec? Spec, string? Yaml, string? Problem)> Specs)
        : INoSerializationVerificationNeeded;

    /// <summary>How many specs the loader reads before handing them over: the first trials start while the rest load.</summary>
    private const int SpecBatch = 64;

    private static readonly TimeSpan SuspectFor = TimeSpan.FromSeconds(60);

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Worker(string Id, IActorRef Ref, string Host, string Role)
    {
        /// <summary>The trial (its slot key) this worker is lent to, if any.</summary>
        public string? Trial { get; set; }

        /// <summary>Shutting down (SIGTERM): gets no new ranks.</summary>
        public bool Draining { get; set; }

        /// <summary>Silent in a failed generation, or a student could not reach its teacher: nothing new goes here
        /// until then (it may be dead or hung and not yet downed by the cluster).</summary>
        public DateTime SuspectUntil { get; set; }
    }

    /// <summary>A trial this coordinator is responsible for: queued, on the cluster, or waiting out a restart backoff.</summary>
    private sealed class TrialSlot(RunRecord run, TrialRecord trial)
    {
        public RunRecord Run { get; } = run;
        public TrialRecord Trial { get; } = trial;
        public string Key { get; } = SlotKey(run.Id, trial.Id);
        public bool Staged { get; } = run.Entry(trial.Id).Stage is not null;
        /// <summary>The trial's stored spec, read by the background loader (null until then: not placed before).</summary>
        public ExperimentSpec? Spec { get; set; }
        public string SpecYaml { get; set; } = "";

        /// <summary>Its coordinator, from its first placement on (null while it has never run under this manager).</summary>
        public IActorRef? Actor { get; set; }
        public bool Queued { get; set; }

        /// <summary>Workers lent to it (ranks and teachers).</summary>
        public HashSet<string> Lent { get; } = new(StringComparer.Ordinal);
        public bool HoldsRanks { get; set; }

        /// <summary>All its ranks were told to train, on this many workers (an elastic trial may grow from here).</summary>
        public int? TrainingRanks { get; set; }
        public bool Growing { get; set; }
        public bool Cancelled { get; set; }
        public int LentTeachers { get; set; }
        public bool TeachersExhausted { get; set; }
    }

    private static string SlotKey(string runId, string trialId) => $"{runId}/{trialId}";

    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <summary>Ordered by id, so placement is deterministic without sorting on every pass.</summary>
    private readonly SortedDictionary<string, Worker> _workers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TrialSlot> _slots = new(StringComparer.Ordinal);
    private readonly List<TrialSlot> _queue = new();
    private int _stagedQueued;
    private readonly HashSet<TrialSlot> _holding = new();
    private readonly Dictionary<string, int> _holdingByRun = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _liveByRun = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, string> _children = new();
    private long _childCount;

    private readonly RunStore _store;
    private readonly bool _recover;

    /// <param name="store">The runs this coordinator reads submissions from and records state into.</param>
    /// <param name="recover">Continue the store's unfinished runs when starting (serve after a crash or restart); false
    /// for the embedded local cluster, which only runs what it is given.</param>
    public static Props Props(RunStore store, bool recover = false) => Akka.Actor.Props.Create(() => new ExperimentManager(store, recover));

    public ExperimentManager(RunStore store, bool recover = false)
    {
        _store = store;
        _recover = recover;
        Receive<RegisterWorker>(Register);
        Receive<WorkerDraining>(Draining);
        Receive<Terminated>(t =>
        {
            if (_children.Remove(t.ActorRef, out var key)) ChildStopped(key);
            else WorkerLost(t.ActorRef);
        });
        Receive<SubmitRun>(Submit);
        Receive<CancelRun>(Cancel);
        Receive<TrialReleased>(Released);
        Receive<RanksWanted>(m =>
        {
            if (!_slots.TryGetValue(m.Key, out var slot) || slot.Queued || slot.HoldsRanks) return;
            Enqueue(slot, front: true);
            Schedule();
        });
        Receive<RanksTraining>(m =>
        {
            if (!_slots.TryGetValue(m.Key, out var slot) || !slot.HoldsRanks) return;
            slot.TrainingRanks = m.Ranks;
            GrowElasticTrials();
        });
        Receive<TeacherReleased>(TeacherReleased);
        Receive<SpecsLoaded>(SpecsArrived);
        Receive<RetrySchedule>(_ => Schedule());
        Receive<ShutdownWorkers>(m =>
        {
            foreach (var worker in _workers.Values) worker.Ref.Tell(new ShutdownWorker(m.Reason));
            Sender.Tell(new WorkersShutDown(_workers.Count));
        });
    }

    /// <summary>
    /// A trial coordinator that throws is restarted (it aborts its generation and continues the trial from the latest
    /// checkpoint, counted against resources.max_restarts); one that keeps throwing is stopped and its trial fails.
    /// The manager itself, its registry and the other trials carry on either way.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(10, TimeSpan.FromMinutes(1), e =>
    {
        _log.Error(e, "a trial coordinator failed: {0}", e.Message);
        return e is ActorInitializationException ? Directive.Stop : Directive.Restart;
    });

    protected override void PreStart()
    {
        if (_recover) Recover(_store);
    }

    /// <summary>
    /// Queues every trial of the store that was queued or running when the previous coordinator stopped (a crash, a
    /// restart): each runs again from its latest committed checkpoint, with no user action. Runs whose cancel was
    /// requested, and finished trials, stay as they are.
    /// </summary>
    private void Recover(RunStore store)
    {
        IReadOnlyList<RunRecord> runs;
        try
        {
            runs = store.List();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or System.Data.Common.DbException)
        {
            _log.Error("cannot read the run-state store {0} to recover unfinished runs: {1}", store.State, e.Message);
            return;
        }
        foreach (var run in runs)
        {
            try
            {
                if (run.CancelRequested) continue;
                var added = Enqueue(run, s => s is TrialState.Running or TrialState.Pending);
                if (added > 0) _log.Warning("recovering run {0}: {1} unfinished trial(s) continue from their latest checkpoints", run.Id, added);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidDataException or SpecException
                                           or System.Data.Common.DbException)
            {
                _log.Error("cannot recover run {0}: {1}", run.Id, e.Message);
            }
        }
    }

    /// <summary>Queues the trials of <paramref name="run"/> whose recorded state passes <paramref name="wanted"/> and
    /// that this coordinator does not already have; returns how many.</summary>
    private int Enqueue(RunRecord run, Func<TrialState, bool> wanted, string? onlyTrial = null)
    {
        var added = 0;
        var toLoad = new List<(string Key, TrialRecord Trial)>();
        var statuses = run.Statuses();
        foreach (var (trial, status) in run.Trials.Zip(statuses))
        {
            if ((onlyTrial is not null && trial.Id != onlyTrial) || !wanted(status.State) || _slots.ContainsKey(SlotKey(run.Id, trial.Id))) continue;
            // Queued again (resume, recovery): say so at once, so a follower never reads the previous attempt's outcome.
            // Written even when it is pending already, so its coordinator folds events into it without a query each.
            if (status.State == TrialState.Pending) _store.Writer.Write(new WriteStatus(run.Id, status));
            else trial.WriteStatus(status with { State = TrialState.Pending, Error = null, UpdatedAt = DateTimeOffset.UtcNow });
            var slot = new TrialSlot(run, trial);
            _slots[slot.Key] = slot;
            _liveByRun[run.Id] = _liveByRun.GetValueOrDefault(run.Id) + 1;
            Enqueue(slot, front: false);
            toLoad.Add((slot.Key, trial));
            added++;
        }
        LoadSpecs(toLoad);
        return added;
    }

    /// <summary>
    /// Reads and validates the trials' stored specs on a pool thread, handing them to this actor in batches, so a sweep
    /// of thousands of trials is answered at once and its first trials start while the rest are read.
    /// </summary>
    private void LoadSpecs(List<(string Key, TrialRecord Trial)> trials)
    {
        if (trials.Count == 0) return;
        var self = Self;
        _ = Task.Run(() =>
        {
            var batch = new List<(string, ExperimentSpec?, string?, string?)>(SpecBatch);
            foreach (var (key, trial) in trials)
            {
                try
                {
                    var (spec, yaml) = trial.LoadSpec(takeFresh: true);
                    batch.Add((key, spec, yaml, null));
                }
                catch (Exception e)
                {
                    // Any failure ends that trial with the reason: an exception lost on a pool thread would leave it queued forever.
                    batch.Add((key, null, null, $"cannot read its spec {trial.SpecPath}: {e.Message}"));
                }
                if (batch.Count == SpecBatch)
                {
                    self.Tell(new SpecsLoaded(batch));
                    batch = new List<(string, ExperimentSpec?, string?, string?)>(SpecBatch);
                }
            }
            if (batch.Count > 0) self.Tell(new SpecsLoaded(batch));
        });
    }

    private void SpecsArrived(SpecsLoaded m)
    {
        foreach (var (key, spec, yaml, problem) in m.Specs)
        {
            if (!_slots.TryGetValue(key, out var slot) || slot.Spec is not null) continue;
            if (spec is not null)
            {
                slot.Spec = spec;
                slot.SpecYaml = yaml!;
                continue;
            }
            // Cancelled meanwhile, or never placeable: it ends here with the reason.
            var failed = new TrialFinished(slot.Trial.Id, TrialOutcome.Failed, 0, problem);
            slot.Trial.Record(failed);
            Context.System.EventStream.Publish(new TrialEventPublished(slot.Run.Id, failed));
            _log.Error("trial {0}: {1}", slot.Trial.Id, problem);
            Forget(slot);
        }
        Schedule();
    }

    private void Enqueue(TrialSlot slot, bool front)
    {
        if (front) _queue.Insert(0, slot);
        else _queue.Add(slot);
        slot.Queued = true;
        if (slot.Staged) _stagedQueued++;
    }

    private void DequeueAt(int index)
    {
        var slot = _queue[index];
        _queue.RemoveAt(index);
        slot.Queued = false;
        if (slot.Staged) _stagedQueued--;
    }

    private void Dequeue(TrialSlot slot)
    {
        var index = _queue.IndexOf(slot);
        if (index >= 0) DequeueAt(index);
    }

    /// <summary>The trial is no longer this coordinator's (finished, skipped, cancelled).</summary>
    private void Forget(TrialSlot slot)
    {
        if (slot.Queued) Dequeue(slot);
        _slots.Remove(slot.Key);
        _liveByRun[slot.Run.Id] = _liveByRun.GetValueOrDefault(slot.Run.Id) - 1;
        CheckRunFinished(slot.Run.Id);
    }

    private void Draining(WorkerDraining m)
    {
        if (!_workers.TryGetValue(m.WorkerId, out var worker)) return;
        worker.Draining = true;
        _log.Info("worker {0} is draining{1}", m.WorkerId, worker.Trial is null ? "" : $": trial {worker.Trial} checkpoints and moves");
    }

    private void Register(RegisterWorker m)
    {
        // The same worker on a fresh node (it lost the coordinator and joined again): the old node is gone.
        if (_workers.TryGetValue(m.WorkerId, out var known) && !known.Ref.Equals(Sender)) WorkerLost(known.Ref);
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
        int added;
        RunRecord? run;
        try
        {
            run = _store.FindExact(m.RunId);
            added = run is null ? 0 : Enqueue(run, s => s != TrialState.Completed, m.TrialId);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidDataException
                                       or ArgumentException or SpecException or InvalidOperationException or System.Data.Common.DbException)
        {
            // A bad submission must not restart the manager: that would forget every worker and running trial.
            Sender.Tell(new Status.Failure(new ArgumentException($"cannot read run {m.RunId}: {e.Message}", e)));
            return;
        }
        if (run is null)
        {
            Sender.Tell(new Status.Failure(new ArgumentException($"no run {m.RunId} in {_store.State}")));
            return;
        }
        Sender.Tell(new RunAccepted(run.Id, added));
        if (added == 0) Context.System.EventStream.Publish(new RunFinished(run.Id));
        Schedule();
    }

    private void Cancel(CancelRun m)
    {
        foreach (var slot in _slots.Values.Where(s => s.Run.Id == m.RunId).ToList())
        {
            if (slot.Actor is null)
            {
                // Never placed: nothing runs, so it ends here.
                var cancelled = new TrialFinished(slot.Trial.Id, TrialOutcome.Cancelled, slot.Trial.ReadStatus().Step, null);
                slot.Trial.Record(cancelled);
                Context.System.EventStream.Publish(new TrialEventPublished(slot.Run.Id, cancelled));
                Forget(slot);
                continue;
            }
            // Queued again or backing off: it ends when its coordinator hears (and gives back anything in flight).
            if (slot.Queued) Dequeue(slot);
            slot.Cancelled = true;
            slot.Actor.Tell(new CancelTrial());
        }
        CheckRunFinished(m.RunId);
    }

    /// <summary>Places queued trials, oldest first (a trial continuing after a failure or a move goes first), while
    /// enough free trainer workers exist and each run stays within its max_concurrent_trials. A trial of a stage waits
    /// until the stages it runs after have completed. Then trials short of teachers get free teacher workers.</summary>
    private void Schedule()
    {
        var now = DateTime.UtcNow;
        var freeTrainers = FreeWorkers(ClusterHosting.TrainerRole, now);
        var freeTeachers = FreeWorkers(ClusterHosting.TeacherRole, now);
        for (var i = 0; i < _queue.Count; i++)
        {
            // Only a stage's trials can leave the queue without workers (skipped, or failed for want of a pick).
            if (freeTrainers.Count == 0 && _stagedQueued == 0) break;
            var slot = _queue[i];
            // Still being read: the loader goes in queue order, so the ones after it are too (but requeued trials).
            if (slot.Spec is null) continue;
            if (slot.Actor is null && slot.Staged)
            {
                var ready = StageReady(slot);
                if (ready == Readiness.Removed)
                {
                    i--;
                    continue;
                }
                if (ready == Readiness.Waiting) continue;
            }
            var resources = slot.Spec.Resources;
            if (_holdingByRun.GetValueOrDefault(slot.Run.Id) >= resources.MaxConcurrentTrials) continue;
            // Elastic: as many ranks as are free, up to workers, and at least min_workers.
            if (freeTrainers.Count < resources.MinimumWorkers) continue;
            // A distillation trial starts with at least one teacher; more join as teacher workers become free.
            if (resources.Teachers > 0 && freeTeachers.Count == 0) continue;
            DequeueAt(i--);
            var take = Math.Min(resources.Workers, freeTrainers.Count);
            var ranks = freeTrainers.GetRange(0, take);
            freeTrainers.RemoveRange(0, take);
            Place(slot, ranks);
        }
        foreach (var slot in _holding.Where(s => s.Spec!.Resources.Teachers > s.LentTeachers && !s.TeachersExhausted))
        {
            if (freeTeachers.Count == 0) break;
            var take = Math.Min(slot.Spec!.Resources.Teachers - slot.LentTeachers, freeTeachers.Count);
            var teachers = freeTeachers.GetRange(0, take);
            freeTeachers.RemoveRange(0, take);
            Lend(slot, teachers);
            slot.LentTeachers += take;
            slot.Actor!.Tell(new TeachersGranted(teachers.Select(w => new LentWorker(w.Id, w.Ref)).ToList()));
        }
        GrowElasticTrials();
    }

    private void Place(TrialSlot slot, List<Worker> workers)
    {
        if (slot.Actor is null)
        {
            slot.Actor = Context.ActorOf(TrialCoordinator.Props(slot.Run, slot.Trial, slot.Spec!, slot.SpecYaml, slot.Key),
                $"trial-{Uri.EscapeDataString(slot.Trial.Id)}-{++_childCount}");
            Context.Watch(slot.Actor);
            _children[slot.Actor] = slot.Key;
        }
        Lend(slot, workers);
        slot.HoldsRanks = true;
        _holding.Add(slot);
        _holdingByRun[slot.Run.Id] = _holdingByRun.GetValueOrDefault(slot.Run.Id) + 1;
        slot.Actor.Tell(new RanksGranted(workers.Select(w => new LentWorker(w.Id, w.Ref)).ToList()));
    }

    private static void Lend(TrialSlot slot, List<Worker> workers)
    {
        foreach (var worker in workers)
        {
            worker.Trial = slot.Key;
            slot.Lent.Add(worker.Id);
        }
    }

    /// <summary>Free workers of a role, in id order.</summary>
    private List<Worker> FreeWorkers(string role, DateTime now) =>
        _workers.Values.Where(w => w.Trial is null && !w.Draining && w.Role == role && w.SuspectUntil <= now).ToList();

    /// <summary>
    /// An elastic trial running on fewer ranks than resources.workers, while no queued trial waits for workers, grows
    /// back: its ranks stop at their next step (voted in that step's all-reduce, rank 0 checkpoints it) and it continues
    /// from there on the free workers too. Nothing is trained twice and it is not counted as a restart.
    /// </summary>
    private void GrowElasticTrials()
    {
        var candidates = _holding.Where(s => s.TrainingRanks is { } ranks && ranks < s.Spec!.Resources.Workers && !s.Growing && !s.Cancelled).ToList();
        if (candidates.Count == 0 || _queue.Any(StageReadyWithoutSideEffects)) return;
        var free = FreeWorkers(ClusterHosting.TrainerRole, DateTime.UtcNow).Count;
        foreach (var slot in candidates.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            if (free == 0) return;
            var ranks = slot.TrainingRanks!.Value;
            var to = Math.Min(slot.Spec!.Resources.Workers, ranks + free);
            free -= to - ranks;
            slot.Growing = true;
            slot.Actor!.Tell(new GrowTrial(to));
        }
    }

    /// <summary>A trial gave its workers back: free them, and queue it again or forget it.</summary>
    private void Released(TrialReleased m)
    {
        if (!_slots.TryGetValue(m.Key, out var slot)) return;
        FreeAll(slot);
        var until = DateTime.UtcNow + SuspectFor;
        foreach (var id in m.Suspects)
        {
            if (!_workers.TryGetValue(id, out var worker)) continue;
            worker.SuspectUntil = until;
            // Placement skips suspects: look again once this one may be chosen.
            Timers.StartSingleTimer($"suspect-{id}", new RetrySchedule(), SuspectFor);
        }
        switch (m.Then)
        {
            case AfterRelease.Requeue when !slot.Cancelled && !slot.Queued:
                Enqueue(slot, front: true);
                break;
            case AfterRelease.Done:
                _children.Remove(Sender);
                Forget(slot);
                break;
        }
        Schedule();
    }

    private void FreeAll(TrialSlot slot)
    {
        foreach (var id in slot.Lent)
            if (_workers.TryGetValue(id, out var worker) && worker.Trial == slot.Key) worker.Trial = null;
        slot.Lent.Clear();
        if (slot.HoldsRanks)
        {
            slot.HoldsRanks = false;
            _holding.Remove(slot);
            _holdingByRun[slot.Run.Id]--;
        }
        slot.TrainingRanks = null;
        slot.Growing = false;
        slot.LentTeachers = 0;
    }

    private void TeacherReleased(TeacherReleased m)
    {
        if (!_slots.TryGetValue(m.Key, out var slot)) return;
        if (slot.Lent.Remove(m.WorkerId))
        {
            slot.LentTeachers--;
            if (_workers.TryGetValue(m.WorkerId, out var worker) && worker.Trial == slot.Key)
            {
                worker.Trial = null;
                if (m.Suspect)
                {
                    worker.SuspectUntil = DateTime.UtcNow + SuspectFor;
                    Timers.StartSingleTimer($"suspect-{worker.Id}", new RetrySchedule(), SuspectFor);
                }
            }
        }
        if (!m.WantsAnother) slot.TeachersExhausted = true;
        Schedule();
    }

    /// <summary>A trial coordinator stopped without finishing its trial (it kept throwing): the trial fails with the
    /// reason, and its workers are free.</summary>
    private void ChildStopped(string key)
    {
        if (!_slots.TryGetValue(key, out var slot)) return;
        FreeAll(slot);
        var failed = new TrialFinished(slot.Trial.Id, TrialOutcome.Failed, slot.Trial.ReadStatus().Step,
            "the trial's coordinator failed repeatedly and was stopped (see the orchestrator's log)");
        slot.Trial.Record(failed);
        Context.System.EventStream.Publish(new TrialEventPublished(slot.Run.Id, failed));
        Forget(slot);
        Schedule();
    }

    private void WorkerLost(IActorRef actor)
    {
        var worker = _workers.Values.FirstOrDefault(w => w.Ref.Equals(actor));
        if (worker is null) return;
        _workers.Remove(worker.Id);
        if (worker.Trial is null || !_slots.TryGetValue(worker.Trial, out var slot))
        {
            _log.Info("worker {0} left the cluster", worker.Id);
            return;
        }
        slot.Lent.Remove(worker.Id);
        if (worker.Role == ClusterHosting.TeacherRole) slot.LentTeachers--;
        // Its trial decides: a teacher is replaced, a rank's group restarts from the checkpoint.
        slot.Actor?.Tell(new WorkerLeft(worker.Id));
        Schedule();
    }

    private enum Readiness { Ready, Waiting, Removed }

    /// <summary>Whether a queued trial could be placed now (its stages are done), without skipping or resolving anything.</summary>
    private bool StageReadyWithoutSideEffects(TrialSlot slot)
    {
        if (!slot.Staged || slot.Actor is not null) return true;
        var run = slot.Run;
        var entry = run.Entry(slot.Trial.Id);
        if (run.Manifest.Stages?.SingleOrDefault(s => s.Name == entry.Stage) is not { } stage) return true;
        return stage.After.SelectMany(run.StageTrials).All(t => !_slots.ContainsKey(SlotKey(run.Id, t.Id))
            && run.Trial(t.Id).ReadStatus().State == TrialState.Completed);
    }

    /// <summary>
    /// Ready when every trial of the stages this one runs after has completed; then a trial whose weights (or teacher)
    /// come from a stage gets its picked source written into its spec. A stage before it that failed (or was skipped,
    /// or stopped without coming back) skips the trial with the reason; waiting while any is still this coordinator's.
    /// </summary>
    private Readiness StageReady(TrialSlot slot)
    {
        var run = slot.Run;
        var entry = run.Entry(slot.Trial.Id);
        if (run.Manifest.Stages?.SingleOrDefault(s => s.Name == entry.Stage) is not { } stage) return Readiness.Ready;
        var waiting = false;
        foreach (var upstream in stage.After.SelectMany(run.StageTrials))
        {
            if (_slots.ContainsKey(SlotKey(run.Id, upstream.Id)))
            {
                waiting = true;
                continue;
            }
            var status = run.Trial(upstream.Id).ReadStatus();
            if (status.State == TrialState.Completed) continue;
            // A skipped trial already names the stage that failed first; repeat its reason rather than nest it.
            var reason = status.State == TrialState.Skipped && status.Error is { } cause ? cause
                : $"stage {upstream.Stage} did not complete: trial {upstream.Id} {status.State.ToString().ToLowerInvariant()}" +
                  (status.Error is { } error ? $" ({error})" : "");
            Skip(slot, reason);
            return Readiness.Removed;
        }
        if (waiting) return Readiness.Waiting;
        if (entry.InitFrom is { } weightsFrom && slot.Spec!.Model.InitFrom is null
            && !ResolveStageSource(slot, weightsFrom, "model.init_from", (spec, source) => spec with { Model = spec.Model with { InitFrom = source } }))
            return Readiness.Removed;
        if (entry.TeacherFrom is { } teacherFrom && slot.Spec!.Distill.Teacher is null
            && !ResolveStageSource(slot, teacherFrom, "distill.teacher", (spec, source) => spec with { Distill = spec.Distill with { Teacher = source } }))
            return Readiness.Removed;
        return Readiness.Ready;
    }

    /// <summary>Writes the trial a stage reference picks into the trial's spec (at <paramref name="key"/>); false, with
    /// the trial failed and the reason recorded, when there is none to pick.</summary>
    private bool ResolveStageSource(TrialSlot slot, StageSource source, string key, Func<ExperimentSpec, string, ExperimentSpec> apply)
    {
        var run = slot.Run;
        var (picked, problem) = Pick(run, source, key);
        if (picked is null)
        {
            var failed = new TrialFinished(slot.Trial.Id, TrialOutcome.Failed, 0, problem);
            slot.Trial.Record(failed);
            Context.System.EventStream.Publish(new TrialEventPublished(run.Id, failed));
            Forget(slot);
            return false;
        }
        var weights = WeightsSource(run, picked);
        (slot.Spec, slot.SpecYaml) = slot.Trial.ResolveStageSource(spec => apply(spec, weights));
        _log.Info("trial {0}: {1} from trial {2} (stage {3}, pick {4})", slot.Trial.Id, key, picked, source.Stage, source.Pick);
        return true;
    }

    /// <summary>The init_from text for a trial of this run: RUN/TRIAL where checkpoints are in the run folder, the
    /// absolute checkpoints folder where --storage is a folder, its azure:// URI in blob storage (read with the worker's
    /// credentials).</summary>
    private static string WeightsSource(RunRecord run, string trialId)
    {
        if (run.Manifest.Storage is not { } storage) return $"{run.Id}/{trialId}";
        var location = Training.Shared.Storage.BlobLocation.Parse(storage);
        return location.Kind == Training.Shared.Storage.BlobLocationKind.LocalFolder
            ? Path.Combine(location.Folder, run.Trial(trialId).CheckpointPrefix)
            : $"{location}/{run.Trial(trialId).CheckpointPrefix}";
    }

    /// <summary>The trial of a completed stage that a stage reference picks: best-eval (lowest final eval loss, ties to the
    /// lower index), last (the stage's last trial) or an index within the stage; else null and why.</summary>
    private static (string? TrialId, string? Problem) Pick(RunRecord run, StageSource source, string key)
    {
        var trials = run.StageTrials(source.Stage);
        if (trials.Count == 0) return (null, $"{key}: stage {source.Stage} has no trials in run {run.Id}");
        var pick = StagePick.Parse(source.Pick);
        switch (pick?.Kind)
        {
            case StagePickKind.BestEval:
                var best = trials.Select(t => (Entry: t, Status: run.Trial(t.Id).ReadStatus()))
                    .Where(t => t.Status.State == TrialState.Completed && t.Status.EvalLoss is not null)
                    .OrderBy(t => t.Status.EvalLoss).ThenBy(t => t.Entry.Index)
                    .FirstOrDefault();
                return best.Entry is null
                    ? (null, $"{key}: pick best-eval, but no trial of stage {source.Stage} recorded a final eval loss")
                    : (best.Entry.Id, null);
            case StagePickKind.Last:
                return (trials[^1].Id, null);
            case StagePickKind.Index when pick.Index < trials.Count:
                return (trials[pick.Index].Id, null);
            default:
                return (null, $"{key}: pick {source.Pick} does not name a trial of stage {source.Stage} ({trials.Count} trial(s))");
        }
    }

    /// <summary>Takes a trial out of the queue without running it, recording why (a stage before it did not complete).</summary>
    private void Skip(TrialSlot slot, string reason)
    {
        slot.Trial.RecordSkipped(reason);
        _log.Warning("trial {0} skipped: {1}", slot.Trial.Id, reason);
        Context.System.EventStream.Publish(new TrialEventPublished(slot.Run.Id, new TrialWarning(slot.Trial.Id, 0, "skipped: " + reason)));
        Forget(slot);
    }

    private void CheckRunFinished(string runId)
    {
        if (_liveByRun.GetValueOrDefault(runId) > 0) return;
        _liveByRun.Remove(runId);
        _holdingByRun.Remove(runId);
        Context.System.EventStream.Publish(new RunFinished(runId));
    }
}
