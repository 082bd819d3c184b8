using Training.Shared.Data;

namespace Training.Shared.Messages;

/// <summary>
/// Control-plane messages between the coordinator and workers. They carry membership, placement, rendezvous
/// addresses, metrics and outcomes; never tensors (gradients go through the collective backend, weights through the
/// blob store). Every one is serialized with MessagePack (<see cref="MessagePackAkkaSerializer"/>).
/// </summary>
public interface IClusterMessage;

/// <summary>A worker announces itself to the coordinator (repeated until acknowledged).</summary>
public sealed record RegisterWorker(string WorkerId, string Host, string Role, string Device, int Threads) : IClusterMessage;

public sealed record WorkerRegistered(string WorkerId) : IClusterMessage;

/// <summary>Run rank <paramref name="Rank"/> of a trial. The spec travels as YAML text; data and checkpoints are
/// reached through paths (shared storage) or the blob store, never through this message.</summary>
/// <param name="Storage">Where the run's checkpoints live, as a storage URI (<c>azure://ACCOUNT/container/prefix</c>, a
/// folder); null for the run folder itself. Never a credential: the worker reads those from its own environment.</param>
public sealed record AssignRank(
    string RunId, string RunDirectory, string TrialId, int TrialIndex, int Generation, int Rank, int WorldSize,
    string SpecYaml, string SpecSource, string CheckpointPrefix, string? Storage = null) : IClusterMessage;

/// <summary>A rank is ready for its group: on CPU it has bound its ring listener at Host:Port; on CUDA rank 0 brings
/// the NCCL unique id (128 bytes) that every rank needs to initialise the communicator.</summary>
public sealed record RankListening(string TrialId, int Generation, int Rank, string Host, int Port, byte[]? NcclUniqueId = null) : IClusterMessage;

/// <summary>Every rank's collective address, indexed by rank (and the NCCL id on CUDA): form the group and train.</summary>
public sealed record StartTraining(string TrialId, int Generation, IReadOnlyList<string> Endpoints, byte[]? NcclUniqueId = null) : IClusterMessage;

/// <summary>Stop a trial's rank: checkpoint and stop (cancel), or abort its collectives (a peer failed).</summary>
public sealed record StopRank(string TrialId, int Generation, bool Abort, string Reason) : IClusterMessage;

/// <summary>A training event from a rank, wrapped with the generation it belongs to (stale ones are dropped).</summary>
public sealed record RankEvent(string TrialId, int Generation, int Rank, string EventType, byte[] Payload) : IClusterMessage;

/// <param name="Retryable">A failure that may not happen again (a collective or storage failure, a lost teacher), so the
/// trial is worth restarting from its checkpoint; false for one that will (bad data, a bad spec).</param>
public sealed record RankFinished(string TrialId, int Generation, int Rank, TrialOutcome Outcome, long Step, string? Error, bool Retryable = false) : IClusterMessage;

/// <summary>Ask the coordinator to run (or resume) the unfinished trials of a run in its run-state store (only
/// <paramref name="TrialId"/> when given).</summary>
public sealed record SubmitRun(string RunId, string? TrialId = null) : IClusterMessage;

public sealed record RunAccepted(string RunId, int Trials) : IClusterMessage;

public sealed record CancelRun(string RunId) : IClusterMessage;

/// <summary>Sent to workers when the embedded cluster shuts down.</summary>
public sealed record ShutdownWorker(string Reason) : IClusterMessage;

/// <summary>A worker is leaving (SIGTERM): its ranks checkpoint and stop at the next step boundary, and the coordinator
/// places nothing new on it and runs the stopped trials again elsewhere from that checkpoint.</summary>
public sealed record WorkerDraining(string WorkerId) : IClusterMessage;

/// <summary>Asks the coordinator to send <see cref="ShutdownWorker"/> to every registered worker; answered with the count.</summary>
public sealed record ShutdownWorkers(string Reason) : IClusterMessage;

public sealed record WorkersShutDown(int Count) : IClusterMessage;

/// <summary>Serve the teacher of a distillation trial on this (teacher) worker: load it, open its score stream and answer
/// with <see cref="TeacherListening"/>, or <see cref="TeacherFailed"/> when it cannot.</summary>
/// <param name="Teacher">The trial's distill.teacher (RUN/TRIAL[@STEP], a folder, or azure://...).</param>
/// <param name="RunDirectory">The run folder, whose parent RUN/TRIAL names refer to.</param>
/// <param name="Storage">The run's storage URI (checkpoints of a pipeline's teacher stage are there); never a credential.</param>
/// <param name="Tokenizer">The trial's tokenizer section: the ids of a Hugging Face teacher folder without tokenizer files.</param>
public sealed record AssignTeacher(string RunId, string RunDirectory, string TrialId, string Teacher, string Device, int Threads,
    string? Storage = null, TokenizerSpec? Tokenizer = null) : IClusterMessage;

/// <summary>A teacher is loaded and serves scores at Host:Port for trial TrialId.</summary>
public sealed record TeacherListening(string TrialId, string WorkerId, string Host, int Port, string Description) : IClusterMessage;

/// <summary>A teacher could not be loaded or stopped serving; the coordinator fails the trial if no teacher is left.</summary>
public sealed record TeacherFailed(string TrialId, string WorkerId, string Error) : IClusterMessage;

/// <summary>A student rank lost its connection to the teacher at Endpoint (host:port): the coordinator replaces that
/// teacher now instead of waiting for the cluster to down a dead worker.</summary>
public sealed record TeacherUnreachable(string TrialId, int Generation, string Endpoint, string Reason) : IClusterMessage;

/// <summary>The trial no longer needs this worker's teacher.</summary>
public sealed record StopTeacher(string TrialId) : IClusterMessage;

/// <summary>The score streams of a trial's live teachers (sent to each student rank whenever the set changes).</summary>
public sealed record TeachersChanged(string TrialId, int Generation, IReadOnlyList<string> Endpoints) : IClusterMessage;
