using Training.Orchestrator.State;
using Training.Shared.Messages;
using Training.Worker.Training;

namespace Training.Orchestrator.Scheduling;

/// <summary>
/// The embedded default: runs a run's trials on this machine, up to <c>resources.max_concurrent_trials</c> at a
/// time, each on its own TorchSharp thread. Trials resume from their latest checkpoint when one exists.
/// </summary>
public sealed class LocalTrialRunner(RunRecord run, Action<TrainingEvent> observe)
{
    /// <summary>Runs every trial not yet completed; returns each trial's outcome.</summary>
    public async Task<IReadOnlyDictionary<string, TrialOutcome>> RunAsync(CancellationToken cancel)
    {
        var pending = run.Trials.Where(t => t.ReadStatus().State != TrialState.Completed).ToList();
        var concurrency = pending.Count == 0 ? 1 : Math.Max(1, pending.Min(t => t.LoadSpec().Resources.MaxConcurrentTrials));
        using var slots = new SemaphoreSlim(concurrency);
        var outcomes = new Dictionary<string, TrialOutcome>();
        var tasks = pending.Select(async trial =>
        {
            await slots.WaitAsync(CancellationToken.None);
            try
            {
                var outcome = cancel.IsCancellationRequested || run.CancelRequested
                    ? TrialOutcome.Cancelled
                    : await RunTrialAsync(trial, cancel);
                lock (outcomes) outcomes[trial.Id] = outcome;
            }
            finally
            {
                slots.Release();
            }
        }).ToList();
        await Task.WhenAll(tasks);
        return outcomes;
    }

    private Task<TrialOutcome> RunTrialAsync(TrialRecord record, CancellationToken cancel)
    {
        var spec = record.LoadSpec();
        var entry = run.Manifest.Trials.Single(t => t.Id == record.Id);
        var trial = new Training.Shared.Spec.Trial(record.Id, entry.Index, spec, entry.Overrides);
        void Report(TrainingEvent e)
        {
            record.Record(e);
            observe(e);
        }
        return TorchThread.Run($"trainer-{record.Id}", () =>
        {
            long step = 0;
            try
            {
                using var trainer = new Trainer(new TrainerOptions(trial, run.CheckpointBlobs(), record.CheckpointPrefix, Report,
                    StopRequested: () => run.CancelRequested));
                var outcome = trainer.Run(cancel);
                step = trainer.Step;
                Report(new TrialFinished(record.Id, outcome, step, null));
                return outcome;
            }
            catch (Exception e)
            {
                Report(new TrialFinished(record.Id, TrialOutcome.Failed, record.ReadStatus().Step, $"{e.GetType().Name}: {e.Message}"));
                return TrialOutcome.Failed;
            }
        });
    }
}
