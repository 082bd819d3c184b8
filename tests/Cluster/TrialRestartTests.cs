using Akka.Actor;
using NUnit.Framework;
using Training.Orchestrator.Scheduling;
using Training.Orchestrator.State;
using Training.Shared.Cluster;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Training;
using Training.Tests.Support;

namespace Training.Tests.Cluster;

/// <summary>
/// The coordinator's restart policy, driven through its real protocol: a worker actor that registers, takes the rank,
/// reports a start and then the outcome each generation is told to have. The trial's attempts land in the run-state
/// store, with why each ended.
/// </summary>
[Category("Cluster")]
public class TrialRestartTests
{
    private TempDirectory _dir = null!;
    private RunStore _store = null!;
    private ActorSystem _system = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = new TempDirectory();
        TestCorpus.Write(_dir.Path);
        _store = new RunStore(_dir.Combine("runs"));
        _system = ActorSystem.Create("restart-test");
    }

    [TearDown]
    public async Task TearDown()
    {
        await _system.Terminate();
        _store.Dispose();
        _dir.Dispose();
    }

    /// <summary>The outcome rank 0 reports in generation <c>g</c> (1-based): failed or completed, and whether retryable.</summary>
    private sealed record Outcome(TrialOutcome Result, bool Retryable, string? Error = null);

    private sealed class ProtocolWorker : ReceiveActor
    {
        private readonly IActorRef _manager;

        public ProtocolWorker(IActorRef manager, Func<int, Outcome> outcomeOf)
        {
            _manager = manager;
            Receive<WorkerRegistered>(_ => { });
            Receive<AssignRank>(a => Sender.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, "127.0.0.1", 1)));
            Receive<StartTraining>(start =>
            {
                var step = (start.Generation - 1) * 2L;
                var started = new TrialStarted(start.TrialId, step, 6, 1000, step == 0 ? null : $"step-{step:D8}", null);
                var (type, payload) = MessagePackAkkaSerializer.Pack(started);
                Sender.Tell(new RankEvent(start.TrialId, start.Generation, 0, type, payload));
                var outcome = outcomeOf(start.Generation);
                Sender.Tell(new RankFinished(start.TrialId, start.Generation, 0, outcome.Result, outcome.Result == TrialOutcome.Completed ? 6 : step + 2,
                    outcome.Error, outcome.Retryable));
            });
            ReceiveAny(_ => { });
        }

        protected override void PreStart() => _manager.Tell(new RegisterWorker("protocol-worker", "127.0.0.1", ClusterHosting.TrainerRole, "cpu", 1));
    }

    private async Task<(RunRecord Run, TrialStatus Status, IReadOnlyList<AttemptRecord> Attempts)> RunAsync(Func<int, Outcome> outcomeOf, int? maxRestarts = null)
    {
        var path = _dir.Combine("restart.yaml");
        var yaml = TestCorpus.TinyExperiment(_dir.Path, "restart", steps: 6);
        if (maxRestarts is { } n) yaml = yaml.Replace("  log_every: 1", $"  log_every: 1\nresources:\n  max_restarts: {n}");
        File.WriteAllText(path, yaml);
        var spec = ExperimentLoader.Load(path);
        var run = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        var manager = _system.ActorOf(ExperimentManager.Props(_store));
        _system.ActorOf(Props.Create(() => new ProtocolWorker(manager, outcomeOf)));
        var accepted = await manager.Ask<RunAccepted>(new SubmitRun(run.Id), TimeSpan.FromSeconds(10));
        Assert.That(accepted.Trials, Is.EqualTo(1));
        var trial = run.Trial("restart-t000");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && trial.ReadStatus().State is TrialState.Pending or TrialState.Running) await Task.Delay(50);
        _store.Writer.Flush();
        return (run, trial.ReadStatus(), trial.Attempts());
    }

    [Test]
    public async Task RetryableFailure_RestartsAfterBackoffFromTheCheckpoint_AndRecordsBothAttempts()
    {
        var (_, status, attempts) = await RunAsync(g => g == 1
            ? new Outcome(TrialOutcome.Failed, true, "CollectiveTimeoutException: rank 1 did not answer within 30 s")
            : new Outcome(TrialOutcome.Completed, false));
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Completed), status.Error);
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts.Select(a => a.Generation), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(attempts[0].Reason, Does.Contain("rank 0 failed: CollectiveTimeoutException").And.Contain("generation 2").And.Contain("restart 1 of 3"));
            Assert.That(attempts[1].ResumedFrom, Is.EqualTo("step-00000002"), "the second attempt starts from the checkpoint");
            Assert.That(attempts[1].StartedAt - attempts[0].EndedAt!.Value, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(900)), "after the 1 s backoff");
            Assert.That(attempts[1].Workers, Is.EqualTo(new[] { "protocol-worker" }));
        });
    }

    [Test]
    public async Task NonRetryableFailure_FailsAtOnceWithOneAttempt()
    {
        var (_, status, attempts) = await RunAsync(_ => new Outcome(TrialOutcome.Failed, false, "ShardFormatException: train/shard-00002.parquet row group 0"));
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Failed));
            Assert.That(status.Error, Does.Contain("shard-00002.parquet").And.Not.Contain("restart"));
            Assert.That(attempts, Has.Count.EqualTo(1));
            Assert.That(attempts[0].Outcome, Is.EqualTo("failed"));
            Assert.That(attempts[0].Reason, Does.Contain("shard-00002.parquet"));
        });
    }

    [Test]
    public async Task RetryableFailureEveryTime_StopsAfterMaxRestarts_AndSaysSo()
    {
        var (_, status, attempts) = await RunAsync(_ => new Outcome(TrialOutcome.Failed, true, "BlobStoreException: storage did not answer"), maxRestarts: 1);
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Failed));
            Assert.That(status.Error, Does.Contain("storage did not answer").And.Contain("after 1 restart(s), resources.max_restarts 1"));
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "failed" }));
        });
    }

    [Test]
    public void RestartBackoff_DoublesFromOneSecond_UpToThirty()
    {
        Assert.That(Enumerable.Range(1, 8).Select(n => ExperimentManager.RestartBackoff(n).TotalSeconds), Is.EqualTo(new double[] { 1, 2, 4, 8, 16, 30, 30, 30 }));
    }
}
