namespace Training.Orchestrator.State;

/// <summary>
/// Where runs' changing state lives: runs and their trials as submitted, each trial's latest status, every training
/// event (the metrics log), attempts and committed checkpoints, and cancel requests. One schema over SQLite (embedded,
/// the default) and PostgreSQL (a shared deployment); see <see cref="StateLocation"/>. Safe to use from several
/// threads and processes at once.
/// </summary>
public interface IRunStateStore : IDisposable
{
    /// <summary>What the store is, for messages: <c>sqlite:PATH</c> or <c>postgres://HOST:PORT/DB</c> (no password).</summary>
    string Description { get; }

    /// <summary>Adds a run and its trials' first statuses in one transaction (a run is there whole or not at all).</summary>
    /// <exception cref="ArgumentException">A run with this id exists.</exception>
    void CreateRun(RunManifest manifest, IReadOnlyList<TrialStatus> statuses);

    bool RunExists(string runId);

    RunManifest? FindRun(string runId);

    /// <summary>Every run, oldest first.</summary>
    IReadOnlyList<RunManifest> ListRuns();

    /// <summary>When a cancel was requested and not cleared since (null: none).</summary>
    DateTimeOffset? CancelRequested(string runId);

    void SetCancelRequested(string runId, bool requested);

    TrialStatus? ReadStatus(string runId, string trialId);

    /// <summary>Every trial's status of a run, by trial id.</summary>
    IReadOnlyDictionary<string, TrialStatus> ReadStatuses(string runId);

    /// <summary>Applies writes in one transaction, in order (what <see cref="StateWriter"/> batches).</summary>
    void Apply(IReadOnlyList<StateWrite> writes);

    /// <summary>A trial's events after <paramref name="afterSequence"/>, oldest first, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<StoredEvent> ReadEvents(string runId, string trialId, long afterSequence = 0, int limit = int.MaxValue);

    /// <summary>A trial's last <paramref name="count"/> events, oldest first (a log's tail without reading it whole).</summary>
    IReadOnlyList<StoredEvent> TailEvents(string runId, string trialId, int count);

    /// <summary>A number that grows whenever anything of the run is written (what live updates watch).</summary>
    long Version(string runId);

    /// <summary>Every run's <see cref="Version"/>, in one read.</summary>
    IReadOnlyDictionary<string, long> Versions();

    IReadOnlyList<AttemptRecord> Attempts(string runId, string trialId);

    IReadOnlyList<CheckpointRecord> Checkpoints(string runId, string trialId);
}

/// <summary>One write of a batch.</summary>
public abstract record StateWrite(string RunId, string TrialId);

/// <summary>Replaces the trial's status row.</summary>
public sealed record WriteStatus(string RunId, TrialStatus Status) : StateWrite(RunId, Status.TrialId);

/// <summary>Appends one event (one metrics line: <paramref name="Body"/> is its JSON object).</summary>
public sealed record AppendEvent(string RunId, string TrialId, string Type, long Step, DateTimeOffset Time, string Body) : StateWrite(RunId, TrialId);

/// <summary>A new attempt: the trial was placed (generation <paramref name="Generation"/> on these workers).</summary>
public sealed record BeginAttempt(string RunId, string TrialId, int Generation, IReadOnlyList<string> Workers, DateTimeOffset Time) : StateWrite(RunId, TrialId);

/// <summary>The open attempt's ranks started training: from which step and checkpoint (and which one was skipped).</summary>
public sealed record AttemptStarted(string RunId, string TrialId, long StartStep, string? ResumedFrom, string? Skipped = null) : StateWrite(RunId, TrialId);

/// <summary>Closes the trial's open attempt (if any) with its outcome and why.</summary>
public sealed record EndAttempt(string RunId, string TrialId, string Outcome, long Step, string? Reason, DateTimeOffset Time) : StateWrite(RunId, TrialId);

public sealed record RecordCheckpoint(string RunId, string TrialId, long Step, string CheckpointId, string? Location, DateTimeOffset Time) : StateWrite(RunId, TrialId);

/// <summary>An event as stored: its sequence number (increasing within the store), type, step, time and JSON body.</summary>
public sealed record StoredEvent(long Sequence, string Type, long Step, DateTimeOffset Time, string Body);

/// <summary>One placement of a trial, from the coordinator placing it to its end (outcome null while it runs).</summary>
/// <param name="Skipped">Newer checkpoints the attempt skipped on restore because they failed verification, each with why
/// (one per line); null when none was.</param>
public sealed record AttemptRecord(int Number, int Generation, IReadOnlyList<string> Workers, DateTimeOffset StartedAt, long? StartStep,
    string? ResumedFrom, DateTimeOffset? EndedAt, long? EndStep, string? Outcome, string? Reason, string? Skipped = null);

public sealed record CheckpointRecord(long Step, string CheckpointId, string? Location, DateTimeOffset Time);

/// <summary>The run-state store cannot be opened or used (down, unreachable, or newer than this program).</summary>
public sealed class RunStateStoreException(string message, Exception? inner = null) : Exception(message, inner);
