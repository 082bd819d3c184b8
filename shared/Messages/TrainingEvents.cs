namespace Training.Shared.Messages;

/// <summary>What a trainer reports while a trial runs; the CLI and run-state store consume these.</summary>
public abstract record TrainingEvent(string TrialId);

/// <param name="InitializedFrom">Where the weights came from when the trial started from another trial's (model.init_from).</param>
/// <param name="SkippedCheckpoints">Newer checkpoints passed over on restore because they failed verification, each with why.</param>
public sealed record TrialStarted(string TrialId, long StartStep, long TotalSteps, long Parameters, string? ResumedFrom,
    string? InitializedFrom = null, IReadOnlyList<string>? SkippedCheckpoints = null) : TrainingEvent(TrialId);

/// <param name="TokensPerSecond">Tokens the whole group read per second of wall time in this step.</param>
/// <param name="CommunicationSeconds">Time this step spent in the gradient all-reduce (0 for a single rank).</param>
public sealed record StepMetrics(
    string TrialId, long Step, double Loss, double Accuracy, double LearningRate, double GradNorm,
    double TokensPerSecond, double StepSeconds, double CommunicationSeconds = 0) : TrainingEvent(TrialId);

/// <param name="ExactMatch">Task data: the share of eval examples whose greedy generation equals the target; null otherwise.</param>
public sealed record EvalMetrics(string TrialId, long Step, double Loss, double Accuracy, long Tokens, double? ExactMatch = null) : TrainingEvent(TrialId);

public sealed record CheckpointCommitted(string TrialId, long Step, string CheckpointId, string Location) : TrainingEvent(TrialId);

public enum TrialOutcome { Completed, Cancelled, Failed }

public sealed record TrialFinished(string TrialId, TrialOutcome Outcome, long Step, string? Error) : TrainingEvent(TrialId);

/// <summary>Something the operator should know that does not stop the trial: a checkpoint skipped on restore because it
/// fails verification, a checkpoint superseded or an upload retrying while storage is down.</summary>
public sealed record TrialWarning(string TrialId, long Step, string Message) : TrainingEvent(TrialId);
