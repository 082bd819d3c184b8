using Akka.Actor;

namespace Training.Orchestrator.Scheduling;

// Messages between the experiment manager and the trial coordinators it supervises. They never leave the
// orchestrator's process (workers talk to a trial's coordinator through the cluster messages), so they are not
// serialized.

/// <summary>A registered worker the manager lends to a trial.</summary>
internal sealed record LentWorker(string Id, IActorRef Ref);

/// <summary>Manager to trial: run the next generation on these trainer workers.</summary>
internal sealed record RanksGranted(IReadOnlyList<LentWorker> Workers) : INoSerializationVerificationNeeded;

/// <summary>Manager to trial: these teacher workers are the trial's until it gives them back.</summary>
internal sealed record TeachersGranted(IReadOnlyList<LentWorker> Workers) : INoSerializationVerificationNeeded;

/// <summary>Manager to trial: a worker lent to it left the cluster (or came back as a new node).</summary>
internal sealed record WorkerLeft(string WorkerId) : INoSerializationVerificationNeeded;

/// <summary>Manager to trial: the run was cancelled.</summary>
internal sealed record CancelTrial : INoSerializationVerificationNeeded;

/// <summary>Manager to trial: workers are free; stop at the next step and continue on <paramref name="To"/> ranks.</summary>
internal sealed record GrowTrial(int To) : INoSerializationVerificationNeeded;

/// <summary>What a trial that gives its workers back does next.</summary>
internal enum AfterRelease
{
    /// <summary>Queue it again at the front: it continues from its checkpoint on whichever workers are free.</summary>
    Requeue,

    /// <summary>It waits out a restart backoff and then asks with <see cref="RanksWanted"/>.</summary>
    Backoff,

    /// <summary>It has finished (completed, failed, cancelled) and stops.</summary>
    Done,
}

/// <summary>Trial to manager: every worker lent to the trial is free again; <paramref name="Suspects"/> stay out of
/// placement for a while (silent, maybe dead or hung).</summary>
internal sealed record TrialReleased(string Key, AfterRelease Then, IReadOnlyList<string> Suspects) : INoSerializationVerificationNeeded;

/// <summary>Trial to manager: its backoff is over, queue it (at the front).</summary>
internal sealed record RanksWanted(string Key) : INoSerializationVerificationNeeded;

/// <summary>Trial to manager: all of a generation's ranks are listening and were told to train, on this many workers.</summary>
internal sealed record RanksTraining(string Key, int Ranks) : INoSerializationVerificationNeeded;

/// <summary>Trial to manager: one teacher worker is free again; <paramref name="WantsAnother"/> false once too many
/// teachers failed to load (another would fail the same way).</summary>
internal sealed record TeacherReleased(string Key, string WorkerId, bool Suspect, bool WantsAnother) : INoSerializationVerificationNeeded;
