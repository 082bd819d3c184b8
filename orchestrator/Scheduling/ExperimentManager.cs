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
public sealed class ExperimentManager : ReceiveActor, IWithTimers
{
    /// <summary>Teachers of one trial that may fail to load before no more are tried.</summary>
    public const int MaxTeacherFailures = 3;

    /// <summary>Look at the queue again (a suspect worker may be chosen again).</summary>
    private sealed record RetrySchedule;

    /// <summary>A failed trial's backoff is over: queue it again.</summary>
    private sealed record RestartDue(string TrialId);

    /// <summary>Ranks of a generation that had not reported when its first failure was this long ago.</summary>
    private sealed record RanksSilent(string TrialId, int Generation);

    /// <summary>
    /// How long the other ranks of a trial have to report after one failed (their collectives are aborted, so a live
    /// rank answers in well under a second). One that is silent longer is on a dead or hung worker: the trial restarts
    /// without waiting for the cluster's failure detector (about 20 s) to down it.
    /// </summary>
    public static readonly TimeSpan SilentRankTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The wait before restart N after a failure: 1 s, 2 s, 4 s ... up to 30 s (a lost worker restarts at once).</summary>
    public static TimeSpan RestartBackoff(int restart) => TimeSpan.FromSeconds(Math.Min(30, 1 << Math.Clamp(restart - 1, 0, 5)));

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed record Worker(string Id, IActorRef Ref, string Host, string Role)
    {
        public string? Trial { get; set; }

        /// <summary>Shutting down (SIGTERM): gets no new ranks.</summary>
        public bool Draining { get; set; }

        /// <summary>A student could not reach this worker's teacher: no new teacher goes here until then (it may be
        /// dead and not yet downed by the cluster).</summary>
        public DateTime SuspectUntil { get; set; }
    }

    /// <param name="specYaml">The trial's stored spec, read once: every generation's ranks get this same text.</param>
    private sealed class Placement(RunRecord run, TrialRecord trial, ExperimentSpec spec, string specYaml, int generation, int restarts)
    {
        public RunRecord Run { get; } = run;
        public TrialRecord Trial { get; } = trial;
        public ExperimentSpec Spec { get; set; } = spec;
        public string SpecYaml { get; set; } = specYaml;
        public int Generation { get; set; } = generation;
        public int Restarts { get; set; } = restarts;
        public List<Worker> Ranks { get; } = new();
        public string?[] Endpoints { get; set; } = [];
        public byte[]? NcclUniqueId { get; set; }
        public Dictionary<int, RankFinished> Finished { get; } = new();

        /// <summary>Asked to stop at its next step so it can continue on more workers (elastic, below resources.workers).</summary>
        public int? GrowingTo { get; set; }

        /// <summary>The first rank to fail in this generation: its failure decides whether the trial restarts.</summary>
        public RankFinished? FirstFailure { get; set; }
        public bool Cancelled { get; set; }

        /// <summary>Teacher workers serving this trial (distillation), and the score streams of those that are up.</summary>
        public List<Worker> Teachers { get; } = new();
        public Dictionary<string, string> TeacherEndpoints { get; } = new();

        /// <summary>Why the last teacher failed, for the trial's error when none is left, and how many have failed.</summary>
        public string? TeacherError { get; set; }
        public int TeacherFailures { get; set; }
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, Worker> _workers = new();
    private readonly List<Placement> _queue = new();
    private readonly Dictionary<string, Placement> _running = new();

    /// <summary>Failed trials waiting out their backoff before they are queued again.</summary>
    private readonly Dictionary<string, Placement> _backingOff = new();
    private readonly Dictionary<string, RunRecord> _runs = new();

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
        Receive<Terminated>(t => WorkerLost(t.ActorRef));
        Receive<SubmitRun>(Submit);
        Receive<CancelRun>(Cancel);
        Receive<RankListening>(Listening);
        Receive<RankEvent>(RankEventReceived);
        Receive<RankFinished>(Finished);
        Receive<TeacherListening>(TeacherUp);
        Receive<TeacherFailed>(TeacherDown);
        Receive<TeacherUnreachable>(TeacherUnreachable);
        Receive<RetrySchedule>(_ => Schedule());
        Receive<RanksSilent>(Silent);
        Receive<RestartDue>(m =>
        {
            if (!_backingOff.Remove(m.TrialId, out var placement)) return;
            _queue.Insert(0, placement);
            Schedule();
        });
        Receive<ShutdownWorkers>(m =>
        {
            foreach (var worker in _workers.Values) worker.Ref.Tell(new ShutdownWorker(m.Reason));
            Sender.Tell(new WorkersShutDown(_workers.Count));
        });
    }

    protected override void PreStart()
    {
        if (_recover) Recover(_store);
    }

    /// <summary>
    /// Queues every trial of the runs folder that was queued or running when the previous coordinator stopped (a
    /// crash, a restart): each runs again from its latest committed checkpoint, with no user action. Runs whose cancel
    /// was requested, and finished trials, stay as they are.
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
    /// that are not already queued or running; returns how many.</summary>
    private int Enqueue(RunRecord run, Func<TrialState, bool> wanted, string? onlyTrial = null)
    {
        _runs[run.Id] = run;
        var added = 0;
        var statuses = run.Statuses();
        foreach (var (trial, status) in run.Trials.Zip(statuses))
        {
            if ((onlyTrial is not null && trial.Id != onlyTrial) || !wanted(status.State) || _running.ContainsKey(trial.Id) || _backingOff.ContainsKey(trial.Id) || _queue.Any(p => p.Trial.Id == trial.Id)) continue;
            var (spec, specYaml) = trial.LoadSpec();
            // Queued again (resume, recovery): say so at once, so a follower never reads the previous attempt's outcome.
            if (status.State != TrialState.Pending) trial.WriteStatus(status with { State = TrialState.Pending, Error = null, UpdatedAt = DateTimeOffset.UtcNow });
            _queue.Add(new Placement(run, trial, spec, specYaml, generation: 1, restarts: 0));
            added++;
        }
        return added;
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
        foreach (var queued in _queue.Where(p => p.Run.Id == m.RunId).Concat(_backingOff.Values.Where(p => p.Run.Id == m.RunId)).ToList())
        {
            _queue.Remove(queued);
            _backingOff.Remove(queued.Trial.Id);
            var cancelled = new TrialFinished(queued.Trial.Id, TrialOutcome.Cancelled, queued.Trial.ReadStatus().Step, null);
            queued.Trial.Record(cancelled);
            Context.System.EventStream.Publish(new TrialEventPublished(queued.Run.Id, cancelled));
        }
        foreach (var placement in _running.Values.Where(p => p.Run.Id == m.RunId))
        {
            placement.Cancelled = true;
            foreach (var rank in placement.Ranks) rank.Ref.Tell(new StopRank(placement.Trial.Id, placement.Generation, Abort: false, "cancelled"));
        }
        CheckRunFinished(m.RunId);
    }

    /// <summary>Places queued trials, oldest first, while enough free trainer workers exist and each run stays
    /// within its max_concurrent_trials. A trial of a stage waits until the stages it runs after have completed.</summary>
    private void Schedule()
    {
        foreach (var placement in _queue.ToList())
        {
            if (!StageReady(placement)) continue;
            var resources = placement.Spec.Resources;
            var concurrent = _running.Values.Count(p => p.Run.Id == placement.Run.Id);
            if (concurrent >= resources.MaxConcurrentTrials) continue;
            // Elastic: as many ranks as are free, up to workers, and at least min_workers.
            var free = FreeWorkers(ClusterHosting.TrainerRole).Take(resources.Workers).ToList();
            if (free.Count < resources.MinimumWorkers) continue;
            // A distillation trial starts with at least one teacher; more join as teacher workers become free.
            if (resources.Teachers > 0 && !FreeWorkers(ClusterHosting.TeacherRole).Any()) continue;
            _queue.Remove(placement);
            Place(placement, free);
        }
        foreach (var running in _running.Values.Where(p => p.Teachers.Count < p.Spec.Resources.Teachers).ToList())
            PlaceTeachers(running);
        GrowElasticTrials();
    }

    /// <summary>
    /// An elastic trial running on fewer ranks than resources.workers, while no queued trial waits for workers, grows
    /// back: its ranks stop at their next step (voted in that step's all-reduce, rank 0 checkpoints it) and it continues
    /// from there on the free workers too. Nothing is trained twice and it is not counted as a restart.
    /// </summary>
    private void GrowElasticTrials()
    {
        if (_queue.Any(StageReadyWithoutSideEffects)) return;
        var free = FreeWorkers(ClusterHosting.TrainerRole).Count();
        foreach (var placement in _running.Values.Where(p => p.GrowingTo is null && !p.Cancelled && p.Ranks.Count < p.Spec.Resources.Workers
                     && p.Endpoints.All(e => e is not null)).OrderBy(p => p.Trial.Id, StringComparer.Ordinal).ToList())
        {
            if (free == 0) return;
            var to = Math.Min(placement.Spec.Resources.Workers, placement.Ranks.Count + free);
            free -= to - placement.Ranks.Count;
            placement.GrowingTo = to;
            _log.Info("trial {0}: growing from {1} to {2} worker(s) at its next step", placement.Trial.Id, placement.Ranks.Count, to);
            foreach (var rank in placement.Ranks)
                rank.Ref.Tell(new StopRank(placement.Trial.Id, placement.Generation, Abort: false, $"growing to {to} workers"));
        }
    }

    /// <summary>Whether a queued trial could be placed now (its stages are done), without skipping or resolving anything.</summary>
    private bool StageReadyWithoutSideEffects(Placement placement)
    {
        var entry = placement.Run.Manifest.Trials.Single(t => t.Id == placement.Trial.Id);
        if (entry.Stage is null || placement.Run.Manifest.Stages?.SingleOrDefault(s => s.Name == entry.Stage) is not { } stage) return true;
        return stage.After.SelectMany(placement.Run.StageTrials).All(t => !_running.ContainsKey(t.Id) && !_queue.Any(q => q.Trial.Id == t.Id)
            && placement.Run.Trial(t.Id).ReadStatus().State == TrialState.Completed);
    }

    private IEnumerable<Worker> FreeWorkers(string role) =>
        _workers.Values.Where(w => w.Trial is null && !w.Draining && w.Role == role && w.SuspectUntil <= DateTime.UtcNow)
            .OrderBy(w => w.Id, StringComparer.Ordinal);

    private static readonly TimeSpan SuspectFor = TimeSpan.FromSeconds(60);

    /// <summary>Asks free teacher workers to serve the trial's teacher until it has resources.teachers of them (at the
    /// start, and to replace one that died).</summary>
    private void PlaceTeachers(Placement placement)
    {
        // A teacher that fails to load will fail on the next worker too: stop trying after a few.
        if (placement.TeacherFailures >= MaxTeacherFailures) return;
        var wanted = placement.Spec.Resources.Teachers - placement.Teachers.Count;
        foreach (var worker in FreeWorkers(ClusterHosting.TeacherRole).Take(wanted).ToList())
        {
            worker.Trial = placement.Trial.Id;
            placement.Teachers.Add(worker);
            worker.Ref.Tell(new AssignTeacher(placement.Run.Id, placement.Run.Dir, placement.Trial.Id, placement.Spec.Distill.Teacher!,
                placement.Spec.Resources.Device, placement.Spec.Resources.Threads, placement.Run.Manifest.Storage));
            _log.Info("trial {0}: teacher on {1}", placement.Trial.Id, worker.Id);
        }
    }

    private void TeacherUp(TeacherListening m)
    {
        if (!_running.TryGetValue(m.TrialId, out var placement) || placement.Teachers.All(t => t.Id != m.WorkerId))
        {
            Sender.Tell(new StopTeacher(m.TrialId));
            return;
        }
        placement.TeacherEndpoints[m.WorkerId] = $"{m.Host}:{m.Port}";
        _log.Info("trial {0}: teacher {1} serves at {2}:{3} ({4})", m.TrialId, m.WorkerId, m.Host, m.Port, m.Description);
        AnnounceTeachers(placement);
    }

    private void TeacherDown(TeacherFailed m)
    {
        if (!_running.TryGetValue(m.TrialId, out var placement) || placement.Teachers.FirstOrDefault(t => t.Id == m.WorkerId) is not { } worker) return;
        _log.Warning("trial {0}: teacher on {1} failed: {2}", m.TrialId, m.WorkerId, m.Error);
        placement.TeacherError = m.Error;
        placement.TeacherFailures++;
        DropTeacher(placement, worker);
        Schedule();
        if (placement.Teachers.Count == 0)
            foreach (var rank in placement.Ranks)
                rank.Ref.Tell(new StopRank(placement.Trial.Id, placement.Generation, Abort: true, $"no teacher is left: {m.Error}"));
    }

    /// <summary>A student lost a teacher's stream (the process died, or its network did): the cluster notices a dead
    /// worker only after its failure detector's pause, so the teacher is replaced now, on another free teacher worker.</summary>
    private void TeacherUnreachable(TeacherUnreachable m)
    {
        if (!_running.TryGetValue(m.TrialId, out var placement) || placement.Generation != m.Generation) return;
        var id = placement.TeacherEndpoints.FirstOrDefault(kv => kv.Value == m.Endpoint).Key;
        if (id is null || placement.Teachers.FirstOrDefault(t => t.Id == id) is not { } worker) return;
        _log.Warning("trial {0}: a student lost its teacher on {1} at {2} ({3}); a free teacher worker replaces it", m.TrialId, id, m.Endpoint, m.Reason);
        worker.Ref.Tell(new StopTeacher(m.TrialId));
        worker.SuspectUntil = DateTime.UtcNow + SuspectFor;
        DropTeacher(placement, worker);
        Schedule();
        // Placement skips suspects: look again once this one may be chosen.
        Timers.StartSingleTimer($"suspect-{worker.Id}", new RetrySchedule(), SuspectFor);
    }

    private void DropTeacher(Placement placement, Worker worker)
    {
        placement.Teachers.Remove(worker);
        placement.TeacherEndpoints.Remove(worker.Id);
        worker.Trial = null;
        AnnounceTeachers(placement);
    }

    /// <summary>Tells every student rank which teachers are up; a rank that has not started keeps the list for its start.</summary>
    private void AnnounceTeachers(Placement placement)
    {
        var changed = new TeachersChanged(placement.Trial.Id, placement.Generation, placement.TeacherEndpoints.Values.Order(StringComparer.Ordinal).ToList());
        foreach (var rank in placement.Ranks) rank.Ref.Tell(changed);
    }

    /// <summary>The trial is off the cluster (finished, or queued to run again): its teacher workers are free again.</summary>
    private void ReleaseTeachers(Placement placement)
    {
        foreach (var teacher in placement.Teachers)
        {
            teacher.Ref.Tell(new StopTeacher(placement.Trial.Id));
            teacher.Trial = null;
        }
        placement.Teachers.Clear();
        placement.TeacherEndpoints.Clear();
    }

    /// <summary>
    /// True when the trial has no stage, or every trial of the stages it runs after has completed; then a trial whose
    /// weights come from a stage gets its picked source written into its spec. A stage before it that failed (or was
    /// skipped, or stopped without coming back) skips the trial with the reason; false while any is still queued or running.
    /// </summary>
    private bool StageReady(Placement placement)
    {
        var run = placement.Run;
        var entry = run.Manifest.Trials.Single(t => t.Id == placement.Trial.Id);
        if (entry.Stage is null || run.Manifest.Stages?.SingleOrDefault(s => s.Name == entry.Stage) is not { } stage) return true;
        var waiting = false;
        foreach (var upstream in stage.After.SelectMany(run.StageTrials))
        {
            if (_running.ContainsKey(upstream.Id) || _queue.Any(p => p.Run.Id == run.Id && p.Trial.Id == upstream.Id))
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
            Skip(placement, reason);
            return false;
        }
        if (waiting) return false;
        if (entry.InitFrom is { } weightsFrom && placement.Spec.Model.InitFrom is null
            && !ResolveStageSource(placement, weightsFrom, "model.init_from", (spec, source) => spec with { Model = spec.Model with { InitFrom = source } }))
            return false;
        if (entry.TeacherFrom is { } teacherFrom && placement.Spec.Distill.Teacher is null
            && !ResolveStageSource(placement, teacherFrom, "distill.teacher", (spec, source) => spec with { Distill = spec.Distill with { Teacher = source } }))
            return false;
        return true;
    }

    /// <summary>Writes the trial a stage reference picks into the trial's spec (at <paramref name="key"/>); false, with
    /// the trial failed and the reason recorded, when there is none to pick.</summary>
    private bool ResolveStageSource(Placement placement, StageSource source, string key, Func<ExperimentSpec, string, ExperimentSpec> apply)
    {
        var run = placement.Run;
        var (picked, problem) = Pick(run, source, key);
        if (picked is null)
        {
            _queue.Remove(placement);
            var failed = new TrialFinished(placement.Trial.Id, TrialOutcome.Failed, 0, problem);
            placement.Trial.Record(failed);
            Context.System.EventStream.Publish(new TrialEventPublished(run.Id, failed));
            CheckRunFinished(run.Id);
            return false;
        }
        var weights = WeightsSource(run, picked);
        (placement.Spec, placement.SpecYaml) = placement.Trial.ResolveStageSource(spec => apply(spec, weights));
        _log.Info("trial {0}: {1} from trial {2} (stage {3}, pick {4})", placement.Trial.Id, key, picked, source.Stage, source.Pick);
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
    private void Skip(Placement placement, string reason)
    {
        _queue.Remove(placement);
        placement.Trial.RecordSkipped(reason);
        _log.Warning("trial {0} skipped: {1}", placement.Trial.Id, reason);
        Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, new TrialWarning(placement.Trial.Id, 0, "skipped: " + reason)));
        CheckRunFinished(placement.Run.Id);
    }

    private void Place(Placement placement, List<Worker> workers)
    {
        placement.Ranks.Clear();
        placement.Ranks.AddRange(workers);
        placement.Endpoints = new string?[workers.Count];
        placement.NcclUniqueId = null;
        placement.Finished.Clear();
        placement.GrowingTo = null;
        // A failure of an earlier generation (its group broke when a worker was lost) says nothing about this one.
        placement.FirstFailure = null;
        _running[placement.Trial.Id] = placement;
        var entry = placement.Run.Manifest.Trials.Single(t => t.Id == placement.Trial.Id);
        for (var rank = 0; rank < workers.Count; rank++)
        {
            workers[rank].Trial = placement.Trial.Id;
            workers[rank].Ref.Tell(new AssignRank(placement.Run.Id, placement.Run.Dir, placement.Trial.Id, entry.Index, placement.Generation,
                rank, workers.Count, placement.SpecYaml, placement.Trial.SpecPath, placement.Trial.CheckpointPrefix, placement.Run.Manifest.Storage));
        }
        placement.Trial.BeginAttempt(placement.Generation, workers.Select(w => w.Id).ToList());
        _log.Info("trial {0} generation {1} placed on {2}", placement.Trial.Id, placement.Generation, string.Join(", ", workers.Select(w => w.Id)));
        if (placement.Spec.Resources.Teachers > 0) PlaceTeachers(placement);
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
        if (m.Outcome == TrialOutcome.Failed) placement.FirstFailure ??= m;
        if (m.Outcome == TrialOutcome.Failed && placement.Finished.Count < placement.Ranks.Count)
        {
            // One rank failed: the others are blocked in (or headed for) a collective. Abort them now, and give them a
            // few seconds to say so.
            foreach (var (rank, index) in placement.Ranks.Select((r, i) => (r, i)).Where(x => !placement.Finished.ContainsKey(x.i)))
                rank.Ref.Tell(new StopRank(m.TrialId, m.Generation, Abort: true, $"rank {m.Rank} failed: {m.Error}"));
            if (ReferenceEquals(placement.FirstFailure, m))
                Timers.StartSingleTimer($"silent-{m.TrialId}", new RanksSilent(m.TrialId, m.Generation), SilentRankTimeout);
        }
        if (placement.Finished.Count < placement.Ranks.Count) return;

        foreach (var worker in placement.Ranks) worker.Trial = null;
        _running.Remove(m.TrialId);
        ReleaseTeachers(placement);
        if (!placement.Cancelled && placement.Finished.Values.All(f => f.Outcome == TrialOutcome.Cancelled))
        {
            // Stopped without a cancel: a worker is draining. The ranks checkpointed at the same step; run the trial
            // again from there on other workers (not counted as a restart: nothing failed).
            placement.Generation++;
            var at = placement.Finished.Values.Max(f => f.Step);
            var why = placement.GrowingTo is { } to
                ? $"growing from {placement.Ranks.Count} to {to} worker(s); continuing as generation {placement.Generation} from step {at}"
                : $"a worker is leaving; continuing as generation {placement.Generation} from step {at}";
            placement.Trial.EndAttempt(placement.GrowingTo is null ? "moved" : "grown", at, why);
            _log.Warning("trial {0}: {1}", placement.Trial.Id, why);
            _queue.Insert(0, placement);
            Schedule();
            return;
        }
        var failure = placement.FirstFailure;
        placement.FirstFailure = null;
        if (failure is { Retryable: true } && !placement.Cancelled && placement.Restarts < placement.Spec.Resources.MaxRestarts)
        {
            // Storage down, a collective that failed or timed out, a teacher lost: run it again from its latest
            // checkpoint after a backoff, on whichever workers are free then.
            placement.Generation++;
            placement.Restarts++;
            var wait = RestartBackoff(placement.Restarts);
            var at = Math.Max(placement.Finished.Values.Max(f => f.Step), placement.Trial.ReadStatus().Step);
            var reason = $"rank {failure.Rank} failed: {failure.Error}; restarting as generation {placement.Generation} from the latest checkpoint in {wait.TotalSeconds:F0} s " +
                         $"(restart {placement.Restarts} of {placement.Spec.Resources.MaxRestarts})";
            placement.Trial.EndAttempt("failed", at, reason);
            var warning = new TrialWarning(placement.Trial.Id, at, reason);
            placement.Trial.Record(warning);
            Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, warning));
            _log.Warning("trial {0}: {1}", placement.Trial.Id, reason);
            _backingOff[placement.Trial.Id] = placement;
            Timers.StartSingleTimer($"restart-{placement.Trial.Id}", new RestartDue(placement.Trial.Id), wait);
            Schedule();
            return;
        }
        var outcome = failure is not null ? TrialOutcome.Failed
            : placement.Finished.Values.Any(f => f.Outcome == TrialOutcome.Cancelled) ? TrialOutcome.Cancelled
            : TrialOutcome.Completed;
        // A rank that failed before training (a bad shard at the start) reports step 0: keep the step already recorded.
        var step = Math.Max(placement.Finished.Values.Max(f => f.Step), placement.Trial.ReadStatus().Step);
        var error = failure?.Error is { } failed && placement.Teachers.Count == 0 && placement.TeacherError is { } teacherError && placement.Spec.Resources.Teachers > 0
            ? $"{failed} (teacher: {teacherError})" : failure?.Error;
        if (failure is { Retryable: true } && placement.Restarts > 0)
            error += $" (after {placement.Restarts} restart(s), resources.max_restarts {placement.Spec.Resources.MaxRestarts})";
        var finished = new TrialFinished(m.TrialId, outcome, step, error);
        placement.Trial.Record(finished);
        Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, finished));
        CheckRunFinished(placement.Run.Id);
        Schedule();
    }

    /// <summary>Ranks that stayed silent after their trial's first failure count as failed on a lost worker: the worker
    /// is kept out of placement for a while (it may be dead, or hung) and the trial goes on without waiting for it.</summary>
    private void Silent(RanksSilent m)
    {
        if (!_running.TryGetValue(m.TrialId, out var placement) || placement.Generation != m.Generation || placement.FirstFailure is not { } first) return;
        var silent = placement.Ranks.Select((worker, rank) => (worker, rank)).Where(x => !placement.Finished.ContainsKey(x.rank)).ToList();
        foreach (var (worker, rank) in silent)
        {
            worker.SuspectUntil = DateTime.UtcNow + SuspectFor;
            Timers.StartSingleTimer($"suspect-{worker.Id}", new RetrySchedule(), SuspectFor);
            _log.Warning("trial {0}: rank {1} on worker {2} did not answer within {3} s of rank {4}'s failure; going on without it",
                m.TrialId, rank, worker.Id, SilentRankTimeout.TotalSeconds, first.Rank);
        }
        foreach (var (worker, rank) in silent)
            Finished(new RankFinished(m.TrialId, m.Generation, rank, TrialOutcome.Failed, 0,
                $"rank {rank} on worker {worker.Id} did not answer within {SilentRankTimeout.TotalSeconds:F0} s", Retryable: true));
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
        if (placement.Teachers.Contains(worker))
        {
            // The students fail over to the other teachers on their own; a free teacher worker replaces this one.
            _log.Warning("teacher worker {0} of trial {1} left the cluster", worker.Id, placement.Trial.Id);
            DropTeacher(placement, worker);
            Schedule();
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
        ReleaseTeachers(placement);
        var maxRestarts = placement.Spec.Resources.MaxRestarts;
        if (placement.Cancelled || placement.Restarts >= maxRestarts)
        {
            var outcome = placement.Cancelled ? TrialOutcome.Cancelled : TrialOutcome.Failed;
            var finished = new TrialFinished(placement.Trial.Id, outcome, placement.Trial.ReadStatus().Step,
                outcome == TrialOutcome.Failed ? $"worker {worker.Id} was lost and the trial used its {maxRestarts} restart(s) (resources.max_restarts)" : null);
            placement.Trial.Record(finished);
            Context.System.EventStream.Publish(new TrialEventPublished(placement.Run.Id, finished));
            CheckRunFinished(placement.Run.Id);
        }
        else
        {
            placement.Generation++;
            placement.Restarts++;
            placement.Trial.EndAttempt("failed", placement.Trial.ReadStatus().Step,
                $"worker {worker.Id} was lost; restarting as generation {placement.Generation} from the latest checkpoint (restart {placement.Restarts} of {maxRestarts})");
            _log.Warning("trial {0}: restarting as generation {1} from its latest checkpoint", placement.Trial.Id, placement.Generation);
            _queue.Insert(0, placement);
        }
        Schedule();
    }

    private void CheckRunFinished(string runId)
    {
        if (_queue.Any(p => p.Run.Id == runId) || _running.Values.Any(p => p.Run.Id == runId) || _backingOff.Values.Any(p => p.Run.Id == runId)) return;
        Context.System.EventStream.Publish(new RunFinished(runId));
    }
}
