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
    private sealed record Outcome(TrialOutcome Result, bool Retryable, string? Error = null)
    {
        /// <summary>Keep training until the coordinator asks the rank to stop; then report a checkpointed stop.</summary>
        public static readonly Outcome UntilStopped = new(TrialOutcome.Cancelled, false, "until stopped");

        /// <summary>Never answer again (a hung worker: alive for the cluster, silent for the trial).</summary>
        public static readonly Outcome Silent = new(TrialOutcome.Failed, false, "silent");
    }

    /// <summary>A worker that follows the protocol: registers, listens, and when training starts reports a start and the
    /// outcome <c>outcomeOf(generation, rank)</c> gives; a null outcome makes it die instead (a lost worker).</summary>
    private sealed class ProtocolWorker : ReceiveActor, IWithTimers
    {
        public ITimerScheduler Timers { get; set; } = null!;

        private readonly IActorRef _manager;
        private readonly string _id;
        private int _rank;
        private int _generation;

        public ProtocolWorker(IActorRef manager, string id, Func<int, int, Outcome?> outcomeOf)
        {
            _manager = manager;
            _id = id;
            Receive<WorkerRegistered>(_ => { });
            Receive<AssignRank>(a =>
            {
                _rank = a.Rank;
                Sender.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, "127.0.0.1", 1));
            });
            Receive<StartTraining>(start =>
            {
                var outcome = outcomeOf(start.Generation, _rank);
                if (outcome is null)
                {
                    // Dies a moment later, as a killed process is noticed after its peers' rings have failed.
                    Timers.StartSingleTimer("die", PoisonPill.Instance, TimeSpan.FromMilliseconds(300));
                    return;
                }
                var step = (start.Generation - 1) * 2L;
                _generation = start.Generation;
                if (_rank == 0)
                {
                    var started = new TrialStarted(start.TrialId, step, 6, 1000, step == 0 ? null : $"step-{step:D8}", null);
                    var (type, payload) = MessagePackAkkaSerializer.Pack(started);
                    Sender.Tell(new RankEvent(start.TrialId, start.Generation, 0, type, payload));
                }
                if (ReferenceEquals(outcome, Outcome.UntilStopped)) return;
                if (ReferenceEquals(outcome, Outcome.Silent))
                {
                    Become(() => ReceiveAny(_ => { }));
                    return;
                }
                Sender.Tell(new RankFinished(start.TrialId, start.Generation, _rank, outcome.Result, outcome.Result == TrialOutcome.Completed ? 6 : step + 2,
                    outcome.Error, outcome.Retryable));
            });
            // A stop (not an abort) is voted at the next step, which rank 0 checkpoints: every rank reports it stopped there.
            Receive<StopRank>(stop => stop.Generation == _generation && !stop.Abort, stop =>
                Sender.Tell(new RankFinished(stop.TrialId, stop.Generation, _rank, TrialOutcome.Cancelled, _generation * 2L, null)));
            ReceiveAny(_ => { });
        }

        protected override void PreStart() => _manager.Tell(new RegisterWorker(_id, "127.0.0.1", ClusterHosting.TrainerRole, "cpu", 1));
    }

    private Task<(RunRecord Run, TrialStatus Status, IReadOnlyList<AttemptRecord> Attempts)> RunAsync(Func<int, Outcome> outcomeOf, int? maxRestarts = null) =>
        RunAsync((g, _) => outcomeOf(g), maxRestarts is { } n ? $"resources:\n  max_restarts: {n}" : null, workers: 1);

    private async Task<(RunRecord Run, TrialStatus Status, IReadOnlyList<AttemptRecord> Attempts)> RunAsync(Func<int, int, Outcome?> outcomeOf,
        string? resources, int workers, Func<IActorRef, Task>? whileRunning = null)
    {
        var path = _dir.Combine("restart.yaml");
        var yaml = TestCorpus.TinyExperiment(_dir.Path, "restart", steps: 6);
        if (resources is not null) yaml = yaml.Replace("  log_every: 1", "  log_every: 1\n" + resources);
        File.WriteAllText(path, yaml);
        var spec = ExperimentLoader.Load(path);
        var run = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        var manager = _system.ActorOf(ExperimentManager.Props(_store));
        for (var w = 0; w < workers; w++)
        {
            var id = $"protocol-worker-{w}";
            _system.ActorOf(Props.Create(() => new ProtocolWorker(manager, id, outcomeOf)));
        }
        // Every worker registers before the run is submitted, so the first placement sees all of them.
        await Task.Delay(200);
        var accepted = await manager.Ask<RunAccepted>(new SubmitRun(run.Id), TimeSpan.FromSeconds(10));
        Assert.That(accepted.Trials, Is.EqualTo(1));
        var trial = run.Trial("restart-t000");
        if (whileRunning is not null) await whileRunning(manager);
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
            Assert.That(attempts[1].Workers, Is.EqualTo(new[] { "protocol-worker-0" }));
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
    public async Task WorkerLostAfterItsPeerFailed_NextGenerationCompletes_WithoutAnotherRestart()
    {
        // Generation 1 on two workers: worker 1 dies, so rank 0's ring fails (retryable) and the lost worker restarts the
        // trial on the survivor alone (min_workers 1). The survivor completes generation 2; the old generation's failure
        // must not restart it again.
        var (_, status, attempts) = await RunAsync((g, rank) => (g, rank) switch
        {
            (1, 1) => null,
            (1, 0) => new Outcome(TrialOutcome.Failed, true, "CollectiveException: peer closed the connection"),
            _ => new Outcome(TrialOutcome.Completed, false),
        }, "resources:\n  workers: 2\n  min_workers: 1", workers: 2);
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Completed), status.Error);
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts[0].Reason, Does.Contain("was lost"));
            Assert.That(attempts[1].Workers, Has.Count.EqualTo(1));
        });
    }

    [Test]
    public async Task ElasticTrialOnFewerWorkers_GrowsBackWhenAWorkerJoins_FromTheStepItStoppedAt()
    {
        // workers: 2, min_workers: 1 and one worker: the trial starts 1-way. A second worker joins: the trial stops at its
        // next step and continues 2-way as generation 2 (not a restart).
        var (_, status, attempts) = await RunAsync((g, _) => g == 1 ? Outcome.UntilStopped : new Outcome(TrialOutcome.Completed, false),
            "resources:\n  workers: 2\n  min_workers: 1\n  max_restarts: 0", workers: 1, whileRunning: async manager =>
            {
                await Task.Delay(300);
                _system.ActorOf(Props.Create(() => new ProtocolWorker(manager, "late-worker", (g, _) => new Outcome(TrialOutcome.Completed, false))));
            });
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Completed), status.Error);
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "grown", "completed" }));
            Assert.That(attempts[0].Workers, Has.Count.EqualTo(1));
            Assert.That(attempts[0].Reason, Does.Contain("growing from 1 to 2 worker(s)"));
            Assert.That(attempts[1].Workers, Is.EquivalentTo(new[] { "protocol-worker-0", "late-worker" }));
            Assert.That(attempts[1].Generation, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task PeerSilentAfterARankFailed_TrialRestartsInSecondsWithoutIt()
    {
        // Two ranks of three workers: rank 0's collective fails, rank 1's worker hangs (never answers, never leaves the
        // cluster). The trial does not wait for the failure detector: after the silence timeout it restarts on the
        // other two workers.
        var (_, status, attempts) = await RunAsync((g, rank) => (g, rank) switch
        {
            (1, 1) => Outcome.Silent,
            (1, 0) => new Outcome(TrialOutcome.Failed, true, "CollectiveException: peer closed the connection"),
            _ => new Outcome(TrialOutcome.Completed, false),
        }, "resources:\n  workers: 2", workers: 3);
        Assert.Multiple(() =>
        {
            Assert.That(status.State, Is.EqualTo(TrialState.Completed), status.Error);
            Assert.That(attempts.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attempts[0].Workers, Is.EqualTo(new[] { "protocol-worker-0", "protocol-worker-1" }));
            Assert.That(attempts[1].Workers, Is.EqualTo(new[] { "protocol-worker-0", "protocol-worker-2" }), "the silent worker is left out");
            var recovery = attempts[1].StartedAt - attempts[0].StartedAt;
            Assert.That(recovery, Is.GreaterThanOrEqualTo(TrialCoordinator.SilentRankTimeout).And.LessThan(TimeSpan.FromSeconds(10)),
                "silence timeout plus the first backoff, not the failure detector's pause");
        });
    }

    /// <summary>Follows the protocol and completes after <c>delay</c>, except that in generation 1 of run <c>badRun</c>
    /// it sends an event the coordinator cannot decode (a malformed frame from the network).</summary>
    private sealed class GarblingWorker : ReceiveActor, IWithTimers
    {
        public ITimerScheduler Timers { get; set; } = null!;

        private readonly IActorRef _manager;
        private readonly string _id;

        public GarblingWorker(IActorRef manager, string id, string badRun, TimeSpan delay)
        {
            _manager = manager;
            _id = id;
            var runs = new Dictionary<string, string>();
            Receive<WorkerRegistered>(_ => { });
            Receive<AssignRank>(a =>
            {
                runs[a.TrialId] = a.RunId;
                Sender.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, "127.0.0.1", 1));
            });
            Receive<StartTraining>(start =>
            {
                if (runs[start.TrialId] == badRun && start.Generation == 1)
                {
                    // 0xC1 is never valid MessagePack.
                    Sender.Tell(new RankEvent(start.TrialId, start.Generation, 0, nameof(TrialStarted), [0xC1, 0x00]));
                    return;
                }
                var step = (start.Generation - 1) * 2L;
                var (type, payload) = MessagePackAkkaSerializer.Pack(new TrialStarted(start.TrialId, step, 6, 1000, null, null));
                Sender.Tell(new RankEvent(start.TrialId, start.Generation, 0, type, payload));
                Timers.StartSingleTimer(start.TrialId, new Deliver(Sender, new RankFinished(start.TrialId, start.Generation, 0, TrialOutcome.Completed, 6, null)), delay);
            });
            Receive<Deliver>(d => d.To.Tell(d.Message));
            ReceiveAny(_ => { });
        }

        private sealed record Deliver(IActorRef To, object Message);

        protected override void PreStart() => _manager.Tell(new RegisterWorker(_id, "127.0.0.1", ClusterHosting.TrainerRole, "cpu", 1));
    }

    [Test]
    public async Task TrialCoordinatorThatThrows_IsRestartedAndItsTrialContinues_WhileAnotherTrialAndTheWorkersAreUntouched()
    {
        // Two runs of the same experiment (the same trial id) on two workers. Run A's rank sends an event that cannot be
        // decoded, so A's trial coordinator throws: supervision restarts it, and A runs again from its checkpoint as
        // generation 2. Run B's trial, on the other worker, runs on as one attempt, and both workers stay registered.
        var path = _dir.Combine("restart.yaml");
        var yaml = TestCorpus.TinyExperiment(_dir.Path, "restart", steps: 6);
        File.WriteAllText(path, yaml);
        var spec = ExperimentLoader.Load(path);
        var runA = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        var runB = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        var manager = _system.ActorOf(ExperimentManager.Props(_store));
        _system.ActorOf(Props.Create(() => new GarblingWorker(manager, "worker-a", runA.Id, TimeSpan.FromMilliseconds(200))));
        _system.ActorOf(Props.Create(() => new GarblingWorker(manager, "worker-b", runA.Id, TimeSpan.FromSeconds(2))));
        await Task.Delay(200);
        await manager.Ask<RunAccepted>(new SubmitRun(runB.Id), TimeSpan.FromSeconds(10));
        await manager.Ask<RunAccepted>(new SubmitRun(runA.Id), TimeSpan.FromSeconds(10));
        var trialA = runA.Trial("restart-t000");
        var trialB = runB.Trial("restart-t000");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && new[] { trialA, trialB }.Any(t => t.ReadStatus().State is TrialState.Pending or TrialState.Running)) await Task.Delay(50);
        _store.Writer.Flush();
        var workers = await manager.Ask<WorkersShutDown>(new ShutdownWorkers("test over"), TimeSpan.FromSeconds(5));
        var attemptsA = trialA.Attempts();
        var attemptsB = trialB.Attempts();
        Assert.Multiple(() =>
        {
            Assert.That(trialA.ReadStatus().State, Is.EqualTo(TrialState.Completed), trialA.ReadStatus().Error);
            Assert.That(attemptsA.Select(a => a.Outcome), Is.EqualTo(new[] { "failed", "completed" }));
            Assert.That(attemptsA[0].Reason, Does.Contain("the trial's coordinator failed on RankEvent").And.Contain("restart 1 of 3"));
            Assert.That(attemptsA[1].Generation, Is.EqualTo(2));
            Assert.That(trialB.ReadStatus().State, Is.EqualTo(TrialState.Completed), trialB.ReadStatus().Error);
            Assert.That(attemptsB.Select(a => (a.Generation, a.Outcome)), Is.EqualTo(new[] { (1, "completed") }), "the other trial is not touched");
            Assert.That(workers.Count, Is.EqualTo(2), "the worker registry survives");
        });
    }

    [Test]
    public async Task TrialWhoseStoredSpecCannotBeRead_FailsWithTheReason_AndTheQueueGoesOn()
    {
        // Specs are read off the manager's thread after the submission is answered: a broken one must end its trial
        // with the file and the reason, not leave it queued, and the trials after it still run.
        var path = _dir.Combine("restart.yaml");
        var yaml = TestCorpus.TinyExperiment(_dir.Path, "restart", steps: 6);
        File.WriteAllText(path, yaml);
        var spec = ExperimentLoader.Load(path);
        var broken = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        var good = _store.Create(spec, TrialComponents.Expand(spec), yaml);
        File.WriteAllText(broken.Trial("restart-t000").SpecPath, "model: [unclosed");
        var manager = _system.ActorOf(ExperimentManager.Props(_store));
        _system.ActorOf(Props.Create(() => new ProtocolWorker(manager, "protocol-worker-0", (_, _) => new Outcome(TrialOutcome.Completed, false))));
        await Task.Delay(200);
        await manager.Ask<RunAccepted>(new SubmitRun(broken.Id), TimeSpan.FromSeconds(10));
        await manager.Ask<RunAccepted>(new SubmitRun(good.Id), TimeSpan.FromSeconds(10));
        var trials = new[] { broken.Trial("restart-t000"), good.Trial("restart-t000") };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && trials.Any(t => t.ReadStatus().State is TrialState.Pending or TrialState.Running)) await Task.Delay(50);
        var (failed, completed) = (trials[0].ReadStatus(), trials[1].ReadStatus());
        Assert.Multiple(() =>
        {
            Assert.That(failed.State, Is.EqualTo(TrialState.Failed));
            Assert.That(failed.Error, Does.Contain("cannot read its spec").And.Contain(trials[0].SpecPath));
            Assert.That(completed.State, Is.EqualTo(TrialState.Completed), completed.Error);
        });
    }

    [Test]
    public void RestartBackoff_DoublesFromOneSecond_UpToThirty()
    {
        Assert.That(Enumerable.Range(1, 8).Select(n => TrialCoordinator.RestartBackoff(n).TotalSeconds), Is.EqualTo(new double[] { 1, 2, 4, 8, 16, 30, 30, 30 }));
    }
}
