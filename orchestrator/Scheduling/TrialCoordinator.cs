using Akka.Actor;
using Akka.Event;
using Training.Orchestrator.State;
using Training.Shared.Messages;
using Training.Shared.Spec;

namespace Training.Orchestrator.Scheduling;

/// <summary>
/// One trial on the cluster, from its first placement to its outcome: a child of <see cref="ExperimentManager"/>, which
/// lends it workers. It assigns the ranks and teachers, hands out the collective rendezvous, records the trial's
/// events, and decides what a failure means: restart from the latest checkpoint under a new generation (after a
/// backoff, up to resources.max_restarts), move on a drain, grow an elastic group, or finish. Workers' ranks and
/// teachers talk to this actor directly, so one trial's traffic and faults stay inside it; if it throws, the manager's
/// supervision restarts it and the trial continues from its checkpoint, while every other trial and the worker
/// registry are untouched.
/// </summary>
public sealed class TrialCoordinator : ReceiveActor, IWithTimers
{
    /// <summary>Teachers of one trial that may fail to load before no more are tried.</summary>
    public const int MaxTeacherFailures = 3;

    /// <summary>A failed trial's backoff is over: ask for workers again.</summary>
    private sealed record RestartDue;

    /// <summary>Ranks of a generation that had not reported when its first failure was this long ago.</summary>
    private sealed record RanksSilent(int Generation);

    /// <summary>Sent to itself before a supervised restart: the new instance continues with these counters.</summary>
    private sealed record ContinueAfterCrash(int Generation, int Restarts) : INoSerializationVerificationNeeded;

    /// <summary>
    /// How long the other ranks of a trial have to report after one failed (their collectives are aborted, so a live
    /// rank answers in well under a second). One that is silent longer is on a dead or hung worker: the trial restarts
    /// without waiting for the cluster's failure detector (about 20 s) to down it.
    /// </summary>
    public static readonly TimeSpan SilentRankTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The wait before restart N after a failure: 1 s, 2 s, 4 s ... up to 30 s (a lost worker restarts at once).</summary>
    public static TimeSpan RestartBackoff(int restart) => TimeSpan.FromSeconds(Math.Min(30, 1 << Math.Clamp(restart - 1, 0, 5)));

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly RunRecord _run;
    private readonly TrialRecord _trial;
    private readonly ExperimentSpec _spec;
    private readonly string _specYaml;
    private readonly string _key;

    private int _generation = 1;
    private int _restarts;
    private readonly List<LentWorker> _ranks = new();
    private string?[] _endpoints = [];
    private byte[]? _ncclUniqueId;
    private readonly Dictionary<int, RankFinished> _finished = new();

    /// <summary>Asked to stop at its next step so it can continue on more workers (elastic, below resources.workers).</summary>
    private int? _growingTo;

    /// <summary>The first rank to fail in this generation: its failure decides whether the trial restarts.</summary>
    private RankFinished? _firstFailure;
    private bool _cancelled;

    /// <summary>Teacher workers serving this trial (distillation), and the score streams of those that are up.</summary>
    private readonly List<LentWorker> _teachers = new();
    private readonly Dictionary<string, string> _teacherEndpoints = new();

    /// <summary>Why the last teacher failed, for the trial's error when none is left, and how many have failed.</summary>
    private string? _teacherError;
    private int _teacherFailures;

    /// <param name="key">The manager's name for this trial (run and trial id), on every message back to it.</param>
    /// <param name="specYaml">The trial's stored spec, read once: every generation's ranks get this same text.</param>
    public static Props Props(RunRecord run, TrialRecord trial, ExperimentSpec spec, string specYaml, string key) =>
        Akka.Actor.Props.Create(() => new TrialCoordinator(run, trial, spec, specYaml, key));

    public TrialCoordinator(RunRecord run, TrialRecord trial, ExperimentSpec spec, string specYaml, string key)
    {
        _run = run;
        _trial = trial;
        _spec = spec;
        _specYaml = specYaml;
        _key = key;
        Receive<RanksGranted>(m => Place(m.Workers));
        Receive<TeachersGranted>(m => AssignTeachers(m.Workers));
        Receive<RankListening>(Listening);
        Receive<RankEvent>(RankEventReceived);
        Receive<RankFinished>(Finished);
        Receive<RanksSilent>(Silent);
        Receive<RestartDue>(_ => Context.Parent.Tell(new RanksWanted(_key)));
        Receive<WorkerLeft>(m => WorkerLost(m.WorkerId));
        Receive<CancelTrial>(_ => Cancel());
        Receive<GrowTrial>(m => Grow(m.To));
        Receive<TeacherListening>(TeacherUp);
        Receive<TeacherFailed>(TeacherDown);
        Receive<TeacherUnreachable>(TeacherUnreachable);
        Receive<ContinueAfterCrash>(m =>
        {
            _generation = m.Generation;
            _restarts = m.Restarts;
        });
    }

    private bool HoldsRanks => _ranks.Count > 0;

    /// <summary>
    /// This actor threw (a malformed event, the store refusing a write): its generation's ranks cannot be trusted to be
    /// in step with it any more, so they are aborted and the trial runs again from its latest checkpoint, counted as a
    /// restart. The manager's supervision then restarts this actor, which keeps the counters through its mailbox.
    /// </summary>
    protected override void PreRestart(Exception reason, object message)
    {
        try
        {
            var step = LastStep();
            AbortRanksAndTeachers($"the trial's coordinator failed: {reason.Message}");
            if (_cancelled || _restarts >= _spec.Resources.MaxRestarts)
            {
                Finish(_cancelled ? TrialOutcome.Cancelled : TrialOutcome.Failed, step,
                    _cancelled ? null : $"the trial's coordinator failed: {reason.GetType().Name}: {reason.Message} (after {_restarts} restart(s), resources.max_restarts {_spec.Resources.MaxRestarts})");
                Context.Parent.Tell(new TrialReleased(_key, AfterRelease.Done, []));
                Self.Tell(PoisonPill.Instance);
            }
            else
            {
                var why = $"the trial's coordinator failed on {message.GetType().Name}: {reason.GetType().Name}: {reason.Message}; restarting as generation {_generation + 1} " +
                          $"from the latest checkpoint (restart {_restarts + 1} of {_spec.Resources.MaxRestarts})";
                _trial.EndAttempt("failed", step, why);
                Warn(step, why);
                Context.Parent.Tell(new TrialReleased(_key, AfterRelease.Requeue, []));
                Self.Tell(new ContinueAfterCrash(_generation + 1, _restarts + 1));
            }
        }
        catch (Exception e)
        {
            // The store itself may be what failed: the manager still gets its workers back when this actor stops.
            _log.Error(e, "trial {0}: cannot clean up after its coordinator failed", _trial.Id);
        }
        base.PreRestart(reason, message);
    }

    private void Place(IReadOnlyList<LentWorker> workers)
    {
        if (HoldsRanks)
        {
            _log.Error("trial {0}: granted workers while it holds ranks; giving them back", _trial.Id);
            return;
        }
        if (_cancelled)
        {
            // Cancelled while it waited for these: it never starts again.
            Finish(TrialOutcome.Cancelled, _trial.ReadStatus().Step, null);
            Release(AfterRelease.Done);
            return;
        }
        _ranks.AddRange(workers);
        _endpoints = new string?[workers.Count];
        _ncclUniqueId = null;
        _finished.Clear();
        _growingTo = null;
        // A failure of an earlier generation (its group broke when a worker was lost) says nothing about this one.
        _firstFailure = null;
        var entry = _run.Entry(_trial.Id);
        for (var rank = 0; rank < workers.Count; rank++)
            workers[rank].Ref.Tell(new AssignRank(_run.Id, _run.Dir, _trial.Id, entry.Index, _generation, rank, workers.Count, _specYaml,
                _trial.SpecPath, _trial.CheckpointPrefix, _run.Manifest.Storage));
        _trial.BeginAttempt(_generation, workers.Select(w => w.Id).ToList());
        _log.Info("trial {0} generation {1} placed on {2}", _trial.Id, _generation, string.Join(", ", workers.Select(w => w.Id)));
    }

    private bool Current(int generation, string trialId)
    {
        if (HoldsRanks && generation == _generation && trialId == _trial.Id) return true;
        _log.Warning("dropping a message for trial {0} generation {1}: not the current generation", trialId, generation);
        return false;
    }

    private void Listening(RankListening m)
    {
        if (!Current(m.Generation, m.TrialId) || m.Rank < 0 || m.Rank >= _endpoints.Length) return;
        _endpoints[m.Rank] = $"{m.Host}:{m.Port}";
        if (m.NcclUniqueId is not null) _ncclUniqueId = m.NcclUniqueId;
        if (_endpoints.All(e => e is not null))
        {
            var start = new StartTraining(m.TrialId, m.Generation, _endpoints.Select(e => e!).ToList(), _ncclUniqueId);
            foreach (var rank in _ranks) rank.Ref.Tell(start);
            Context.Parent.Tell(new RanksTraining(_key, _ranks.Count));
            AnnounceTeachers();
        }
    }

    private void RankEventReceived(RankEvent m)
    {
        if (!Current(m.Generation, m.TrialId)) return;
        var e = (TrainingEvent)MessagePackAkkaSerializer.Unpack(m.EventType, m.Payload);
        _trial.Record(e);
        Context.System.EventStream.Publish(new TrialEventPublished(_run.Id, e));
    }

    private void Finished(RankFinished m)
    {
        if (!Current(m.Generation, m.TrialId) || m.Rank < 0 || m.Rank >= _ranks.Count) return;
        _finished[m.Rank] = m;
        if (m.Outcome == TrialOutcome.Failed) _firstFailure ??= m;
        if (m.Outcome == TrialOutcome.Failed && _finished.Count < _ranks.Count)
        {
            // One rank failed: the others are blocked in (or headed for) a collective. Abort them now, and give them a
            // few seconds to say so.
            foreach (var (rank, index) in _ranks.Select((r, i) => (r, i)).Where(x => !_finished.ContainsKey(x.i)))
                rank.Ref.Tell(new StopRank(m.TrialId, m.Generation, Abort: true, $"rank {m.Rank} failed: {m.Error}"));
            if (ReferenceEquals(_firstFailure, m))
                Timers.StartSingleTimer("silent", new RanksSilent(m.Generation), SilentRankTimeout);
        }
        if (_finished.Count < _ranks.Count) return;
        GenerationEnded(suspects: []);
    }

    /// <summary>Every rank of the generation has reported (or was given up on): decide what the trial does next.</summary>
    private void GenerationEnded(IReadOnlyList<string> suspects)
    {
        Timers.Cancel("silent");
        var lastStep = _finished.Values.Max(f => f.Step);
        var ranks = _ranks.Count;
        if (!_cancelled && _finished.Values.All(f => f.Outcome == TrialOutcome.Cancelled))
        {
            // Stopped without a cancel: a worker is draining, or the group grows. The ranks checkpointed at the same
            // step; run the trial again from there (not counted as a restart: nothing failed).
            _generation++;
            var why = _growingTo is { } to
                ? $"growing from {ranks} to {to} worker(s); continuing as generation {_generation} from step {lastStep}"
                : $"a worker is leaving; continuing as generation {_generation} from step {lastStep}";
            _trial.EndAttempt(_growingTo is null ? "moved" : "grown", lastStep, why);
            _log.Warning("trial {0}: {1}", _trial.Id, why);
            Release(AfterRelease.Requeue, suspects);
            return;
        }
        var failure = _firstFailure;
        _firstFailure = null;
        var step = Math.Max(lastStep, _trial.ReadStatus().Step);
        if (failure is { Retryable: true } && !_cancelled && _restarts < _spec.Resources.MaxRestarts)
        {
            // Storage down, a collective that failed or timed out, a teacher lost: run it again from its latest
            // checkpoint after a backoff, on whichever workers are free then.
            _generation++;
            _restarts++;
            var wait = RestartBackoff(_restarts);
            var reason = $"rank {failure.Rank} failed: {failure.Error}; restarting as generation {_generation} from the latest checkpoint in {wait.TotalSeconds:F0} s " +
                         $"(restart {_restarts} of {_spec.Resources.MaxRestarts})";
            _trial.EndAttempt("failed", step, reason);
            Warn(step, reason);
            Release(AfterRelease.Backoff, suspects);
            Timers.StartSingleTimer("restart", new RestartDue(), wait);
            return;
        }
        var outcome = failure is not null ? TrialOutcome.Failed
            : _finished.Values.Any(f => f.Outcome == TrialOutcome.Cancelled) ? TrialOutcome.Cancelled
            : TrialOutcome.Completed;
        // A rank that failed before training (a bad shard at the start) reports step 0: the step already recorded stands.
        var error = failure?.Error is { } failed && _teachers.Count == 0 && _teacherError is { } teacherError && _spec.Resources.Teachers > 0
            ? $"{failed} (teacher: {teacherError})" : failure?.Error;
        if (failure is { Retryable: true } && _restarts > 0)
            error += $" (after {_restarts} restart(s), resources.max_restarts {_spec.Resources.MaxRestarts})";
        Finish(outcome, step, error);
        Release(AfterRelease.Done, suspects);
    }

    /// <summary>Ranks that stayed silent after their trial's first failure count as failed on a lost worker: their
    /// workers are kept out of placement for a while (dead, or hung) and the trial goes on without waiting for them.</summary>
    private void Silent(RanksSilent m)
    {
        if (!HoldsRanks || m.Generation != _generation || _firstFailure is not { } first) return;
        var silent = _ranks.Select((worker, rank) => (worker, rank)).Where(x => !_finished.ContainsKey(x.rank)).ToList();
        foreach (var (worker, rank) in silent)
        {
            _log.Warning("trial {0}: rank {1} on worker {2} did not answer within {3} s of rank {4}'s failure; going on without it",
                _trial.Id, rank, worker.Id, SilentRankTimeout.TotalSeconds, first.Rank);
            _finished[rank] = new RankFinished(_trial.Id, _generation, rank, TrialOutcome.Failed, 0,
                $"rank {rank} on worker {worker.Id} did not answer within {SilentRankTimeout.TotalSeconds:F0} s", Retryable: true);
        }
        GenerationEnded(silent.Select(s => s.worker.Id).ToList());
    }

    private void WorkerLost(string workerId)
    {
        if (_teachers.FirstOrDefault(t => t.Id == workerId) is { } teacher)
        {
            // The students fail over to the other teachers on their own; a free teacher worker replaces this one.
            _log.Warning("teacher worker {0} of trial {1} left the cluster", workerId, _trial.Id);
            DropTeacher(teacher, suspect: false);
            return;
        }
        if (_ranks.All(r => r.Id != workerId)) return;
        _log.Warning("worker {0} left the cluster while running trial {1}", workerId, _trial.Id);

        // The trial's group is broken: abort the surviving ranks, then run it again from its latest checkpoint under a
        // new generation, so anything the old ranks still send is ignored.
        var step = _trial.ReadStatus().Step;
        AbortRanksAndTeachers($"worker {workerId} was lost", except: workerId);
        var maxRestarts = _spec.Resources.MaxRestarts;
        if (_cancelled || _restarts >= maxRestarts)
        {
            var outcome = _cancelled ? TrialOutcome.Cancelled : TrialOutcome.Failed;
            Finish(outcome, step, outcome == TrialOutcome.Failed ? $"worker {workerId} was lost and the trial used its {maxRestarts} restart(s) (resources.max_restarts)" : null);
            Release(AfterRelease.Done);
            return;
        }
        _generation++;
        _restarts++;
        _trial.EndAttempt("failed", step,
            $"worker {workerId} was lost; restarting as generation {_generation} from the latest checkpoint (restart {_restarts} of {maxRestarts})");
        _log.Warning("trial {0}: restarting as generation {1} from its latest checkpoint", _trial.Id, _generation);
        Release(AfterRelease.Requeue);
    }

    private void Cancel()
    {
        if (HoldsRanks)
        {
            _cancelled = true;
            foreach (var rank in _ranks) rank.Ref.Tell(new StopRank(_trial.Id, _generation, Abort: false, "cancelled"));
            return;
        }
        // Waiting for workers or out a backoff: nothing runs, so it ends here.
        Timers.Cancel("restart");
        Finish(TrialOutcome.Cancelled, _trial.ReadStatus().Step, null);
        Release(AfterRelease.Done);
    }

    private void Grow(int to)
    {
        if (!HoldsRanks || _cancelled || _growingTo is not null || to <= _ranks.Count || _endpoints.Any(e => e is null)) return;
        _growingTo = to;
        _log.Info("trial {0}: growing from {1} to {2} worker(s) at its next step", _trial.Id, _ranks.Count, to);
        foreach (var rank in _ranks) rank.Ref.Tell(new StopRank(_trial.Id, _generation, Abort: false, $"growing to {to} workers"));
    }

    private void AssignTeachers(IReadOnlyList<LentWorker> workers)
    {
        // Granted while it was giving its workers back: the manager frees them with the rest.
        if (!HoldsRanks) return;
        foreach (var worker in workers)
        {
            _teachers.Add(worker);
            worker.Ref.Tell(new AssignTeacher(_run.Id, _run.Dir, _trial.Id, _spec.Distill.Teacher!, _spec.Resources.Device, _spec.Resources.Threads,
                _run.Manifest.Storage, _spec.Tokenizer));
            _log.Info("trial {0}: teacher on {1}", _trial.Id, worker.Id);
        }
    }

    private void TeacherUp(TeacherListening m)
    {
        if (m.TrialId != _trial.Id || _teachers.All(t => t.Id != m.WorkerId))
        {
            Sender.Tell(new StopTeacher(m.TrialId));
            return;
        }
        _teacherEndpoints[m.WorkerId] = $"{m.Host}:{m.Port}";
        _log.Info("trial {0}: teacher {1} serves at {2}:{3} ({4})", m.TrialId, m.WorkerId, m.Host, m.Port, m.Description);
        AnnounceTeachers();
    }

    private void TeacherDown(TeacherFailed m)
    {
        if (_teachers.FirstOrDefault(t => t.Id == m.WorkerId) is not { } worker) return;
        _log.Warning("trial {0}: teacher on {1} failed: {2}", _trial.Id, m.WorkerId, m.Error);
        _teacherError = m.Error;
        _teacherFailures++;
        DropTeacher(worker, suspect: false);
        if (_teachers.Count == 0)
            foreach (var rank in _ranks)
                rank.Ref.Tell(new StopRank(_trial.Id, _generation, Abort: true, $"no teacher is left: {m.Error}"));
    }

    /// <summary>A student lost a teacher's stream (the process died, or its network did): the cluster notices a dead
    /// worker only after its failure detector's pause, so the teacher is replaced now, on another free teacher worker.</summary>
    private void TeacherUnreachable(TeacherUnreachable m)
    {
        if (!HoldsRanks || m.Generation != _generation) return;
        var id = _teacherEndpoints.FirstOrDefault(kv => kv.Value == m.Endpoint).Key;
        if (id is null || _teachers.FirstOrDefault(t => t.Id == id) is not { } worker) return;
        _log.Warning("trial {0}: a student lost its teacher on {1} at {2} ({3}); a free teacher worker replaces it", _trial.Id, id, m.Endpoint, m.Reason);
        worker.Ref.Tell(new StopTeacher(_trial.Id));
        DropTeacher(worker, suspect: true);
    }

    private void DropTeacher(LentWorker worker, bool suspect)
    {
        _teachers.Remove(worker);
        _teacherEndpoints.Remove(worker.Id);
        // A teacher that fails to load will fail on the next worker too: stop asking after a few.
        Context.Parent.Tell(new TeacherReleased(_key, worker.Id, suspect, WantsAnother: _teacherFailures < MaxTeacherFailures));
        AnnounceTeachers();
    }

    /// <summary>Tells every student rank which teachers are up; a rank that has not started keeps the list for its start.</summary>
    private void AnnounceTeachers()
    {
        if (_spec.Resources.Teachers == 0) return;
        var changed = new TeachersChanged(_trial.Id, _generation, _teacherEndpoints.Values.Order(StringComparer.Ordinal).ToList());
        foreach (var rank in _ranks) rank.Ref.Tell(changed);
    }

    /// <summary>Aborts the generation's ranks (but the one on <paramref name="except"/>, which is gone) and stops its teachers.</summary>
    private void AbortRanksAndTeachers(string reason, string? except = null)
    {
        foreach (var rank in _ranks.Where(r => r.Id != except)) rank.Ref.Tell(new StopRank(_trial.Id, _generation, Abort: true, reason));
        _ranks.Clear();
        StopTeachers();
    }

    private void StopTeachers()
    {
        foreach (var teacher in _teachers) teacher.Ref.Tell(new StopTeacher(_trial.Id));
        _teachers.Clear();
        _teacherEndpoints.Clear();
    }

    /// <summary>Gives every lent worker back to the manager; a finished trial then stops.</summary>
    private void Release(AfterRelease then, IReadOnlyList<string>? suspects = null)
    {
        _ranks.Clear();
        StopTeachers();
        Context.Parent.Tell(new TrialReleased(_key, then, suspects ?? []));
        if (then == AfterRelease.Done) Context.Stop(Self);
    }

    private void Finish(TrialOutcome outcome, long step, string? error)
    {
        var finished = new TrialFinished(_trial.Id, outcome, step, error);
        _trial.Record(finished);
        Context.System.EventStream.Publish(new TrialEventPublished(_run.Id, finished));
    }

    private void Warn(long step, string message)
    {
        var warning = new TrialWarning(_trial.Id, step, message);
        _trial.Record(warning);
        Context.System.EventStream.Publish(new TrialEventPublished(_run.Id, warning));
        _log.Warning("trial {0}: {1}", _trial.Id, message);
    }

    private long LastStep() => Math.Max(_finished.Count == 0 ? 0 : _finished.Values.Max(f => f.Step), _trial.ReadStatus().Step);
}
