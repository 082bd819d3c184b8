using Training.Orchestrator.State;

namespace Training.Orchestrator.Api;

/// <summary>One trial of a submission: its fully resolved spec (absolute data paths) and its sweep values.</summary>
public sealed record SubmittedTrial(string Id, int Index, string SpecYaml, IReadOnlyDictionary<string, string> Overrides);

/// <summary>POST /api/runs. The client validates and expands the sweep; the server re-validates every trial.</summary>
public sealed record SubmitRequest(string Experiment, string Source, string ExperimentYaml, IReadOnlyList<SubmittedTrial> Trials);

public sealed record SubmitResponse(string RunId, int Trials);

/// <param name="Attempts">Each trial's attempts (placements), oldest first.</param>
public sealed record RunSummary(string Id, string Experiment, DateTimeOffset CreatedAt, IReadOnlyList<TrialStatus> Trials,
    IReadOnlyDictionary<string, IReadOnlyList<AttemptRecord>>? Attempts = null);

public sealed record ApiError(string Error);

/// <summary>POST /api/runs/ID/resume (the body is optional): only one trial, and KEY=VALUE changes to the trials' specs
/// (validated like the file), e.g. <c>train.steps=2000</c>.</summary>
public sealed record ResumeRequest(string? Trial = null, IReadOnlyList<string>? Set = null);
