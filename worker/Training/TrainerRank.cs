using Akka.Actor;
using Akka.Event;
using Training.Shared.Collectives;
using Training.Shared.Data;
using Training.Shared.Objectives;
using Training.Shared.Teaching;
using Training.Shared.Messages;
using Training.Shared.Spec;
using Training.Shared.Storage;
using Training.Shared.Training;

namespace Training.Worker.Training;

/// <summary>
/// One rank of a trial on this worker. Binds its collective listener, tells the coordinator where it listens, and on
/// <see cref="StartTraining"/> connects the ring and runs the <see cref="Trainer"/> on its own TorchSharp thread.
/// Events from the trainer thread come back to this actor as messages and go on to the coordinator.
/// </summary>
public sealed class TrainerRank : ReceiveActor
{
    private sealed record TrainerDone(TrialOutcome Outcome, long Step, string? Error, bool Retryable = false);

    /// <summary>Failures of the machinery rather than of the trial's input: a restart from the checkpoint may succeed.
    /// Bad shards, specs and checkpoints fail the same way every time and are not retried.</summary>
    private static bool Transient(Exception e) => e switch
    {
        CollectiveException or TeacherUnavailableException or TimeoutException or System.Net.Sockets.SocketException => true,
        BlobStoreException storage => storage.Transient,
        BlobAlreadyExistsException => false,
        IOException and not FileNotFoundException and not DirectoryNotFoundException => true,
        // TorchSharp's Scalar finalizer race (docs/architecture.md, rules): a collection freed a Scalar a native call
        // still read. Nothing is wrong with the trial; it restarts from its latest checkpoint.
        System.Runtime.InteropServices.ExternalException native when native.Message.Contains("c10/core/Scalar.h", StringComparison.Ordinal) => true,
        _ => false,
    };

    /// <summary>How long a rank waits for a peer in one collective before the trial fails (seconds, not NCCL's 30 min).</summary>
    public static readonly TimeSpan CollectiveTimeout = TimeSpan.FromSeconds(30);

    // Trainer threads outlive their actor when the node shuts down; the process waits for them before it joins the
    // cluster again or exits, so an old rank never writes a checkpoint beside a new placement of its trial.
    private static readonly HashSet<Task> RunningTrainers = new();

    /// <summary>Waits until every trainer thread of this process has finished, or <paramref name="timeout"/> passed;
    /// true when none is left.</summary>
    public static async Task<bool> WaitForTrainersAsync(TimeSpan timeout)
    {
        Task[] running;
        lock (RunningTrainers) running = RunningTrainers.ToArray();
        if (running.Length == 0) return true;
        var all = Task.WhenAll(running);
        return await Task.WhenAny(all, Task.Delay(timeout)) == all;
    }

    private readonly AssignRank _assignment;
    private readonly IActorRef _coordinator;
    private readonly string _host;
    private readonly string _workerDevice;
    private readonly ExperimentSpec _spec = null!;
    private readonly CollectiveBackend _backend = null!;
    private readonly string? _setupError;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private RingListener? _listener;

    // The torch thread creates the group while the actor thread may stop or abort it: both go through this lock, so
    // a stop that arrives while the group is being formed is never lost.
    private readonly object _groupLock = new();
    private ICollectiveGroup? _group;
    private volatile bool _stopRequested;

    // Distillation: the teachers' score streams as the coordinator last announced them, and the pool the trainer
    // thread scores through (created there at the start; endpoint changes go to it from this actor's thread).
    private readonly object _teacherLock = new();
    private IReadOnlyList<string> _teacherEndpoints = [];
    private TeacherPool? _teachers;

    public static Props Props(AssignRank assignment, IActorRef coordinator, string host, string workerDevice) =>
        Akka.Actor.Props.Create(() => new TrainerRank(assignment, coordinator, host, workerDevice));

    public TrainerRank(AssignRank assignment, IActorRef coordinator, string host, string workerDevice)
    {
        _assignment = assignment;
        _coordinator = coordinator;
        _host = host;
        _workerDevice = workerDevice;
        try
        {
            var spec = ExperimentLoader.Parse(assignment.SpecYaml, assignment.SpecSource);
            // A trial asks for "cuda"; the worker knows which GPU it owns ("cuda:N").
            _spec = spec.Resources.Device.StartsWith("cuda", StringComparison.Ordinal) && workerDevice.StartsWith("cuda", StringComparison.Ordinal)
                ? spec with { Resources = spec.Resources with { Device = workerDevice } }
                : spec;
            _backend = CollectiveBackends.For(_spec.Resources.Device);
        }
        catch (Exception e) when (e is SpecException or ArgumentException)
        {
            // Reported from PreStart as a failed rank, so the coordinator is never left waiting.
            _setupError = e.Message;
        }
        Receive<StartTraining>(m => m.TrialId == _assignment.TrialId && m.Generation == _assignment.Generation, Start);
        Receive<StopRank>(m => m.TrialId == _assignment.TrialId && m.Generation == _assignment.Generation, Stop);
        Receive<TeachersChanged>(m => m.TrialId == _assignment.TrialId && m.Generation == _assignment.Generation, m =>
        {
            lock (_teacherLock)
            {
                _teacherEndpoints = m.Endpoints;
                _teachers?.UpdateEndpoints(TeacherEndpoints(m.Endpoints));
            }
        });
        Receive<TrainingEvent>(e =>
        {
            if (e is TrialWarning w) _log.Warning("trial {0} rank {1}: {2}", w.TrialId, _assignment.Rank, w.Message);
            var (type, payload) = MessagePackAkkaSerializer.Pack(e);
            _coordinator.Tell(new RankEvent(_assignment.TrialId, _assignment.Generation, _assignment.Rank, type, payload));
        });
        Receive<TrainerDone>(done =>
        {
            _coordinator.Tell(new RankFinished(_assignment.TrialId, _assignment.Generation, _assignment.Rank, done.Outcome, done.Step, done.Error, done.Retryable));
            Context.Stop(Self);
        });
    }

    protected override void PreStart()
    {
        var a = _assignment;
        if (_setupError is not null)
        {
            Self.Tell(new TrainerDone(TrialOutcome.Failed, 0, _setupError));
            return;
        }
        try
        {
            if (_backend.Kind == CollectiveBackendKind.Nccl)
            {
                // NCCL: rank 0 creates the communicator's unique id; the coordinator hands it to every rank.
                var id = a.Rank == 0 && a.WorldSize > 1 ? NcclGroup.CreateUniqueId() : null;
                _coordinator.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, _host, 0, id));
            }
            else
            {
                _listener = RingListener.Start(_host);
                _coordinator.Tell(new RankListening(a.TrialId, a.Generation, a.Rank, _listener.Endpoint.Host, _listener.Endpoint.Port));
            }
        }
        catch (CollectiveException e)
        {
            Self.Tell(new TrainerDone(TrialOutcome.Failed, 0, e.Message, Retryable: true));
        }
    }

    protected override void PostStop()
    {
        lock (_groupLock)
        {
            _stopRequested = true;
            _group?.Abort("rank stopped");
        }
        _listener?.Dispose();
    }

    private void Stop(StopRank stop)
    {
        _log.Info("trial {0} rank {1}: {2} ({3})", stop.TrialId, _assignment.Rank, stop.Abort ? "abort" : "stop", stop.Reason);
        // A cancel is voted on inside the next all-reduce so every rank stops after the same step; an abort (a peer
        // died) must also unblock a rank waiting in a collective.
        lock (_groupLock)
        {
            _stopRequested = true;
            if (stop.Abort) _group?.Abort(stop.Reason);
        }
    }

    private void Start(StartTraining start)
    {
        var self = Self;
        var a = _assignment;
        var endpoints = start.Endpoints.Select(e =>
        {
            var colon = e.LastIndexOf(':');
            return new RingEndpoint(e[..colon], int.Parse(e[(colon + 1)..]));
        }).ToList();
        var listener = _listener;
        var spec = _spec;
        var backend = _backend;
        var trainerThread = TorchThread.Run($"rank-{a.TrialId}-{a.Rank}", () =>
        {
            Trainer? trainer = null;
            TrainerDone done;
            try
            {
                var trial = new Trial(a.TrialId, a.TrialIndex, spec, new Dictionary<string, string>());
                using var group = backend.Kind == CollectiveBackendKind.Nccl
                    ? a.WorldSize == 1 ? null : NcclGroup.Create(a.Rank, a.WorldSize, start.NcclUniqueId
                        ?? throw new CollectiveException($"trial {a.TrialId}: no NCCL unique id from rank 0"), backend.CudaDevice ?? 0, CollectiveTimeout)
                    : TcpRing.Connect(listener!, a.Rank, endpoints, $"{a.TrialId}/g{a.Generation}", CollectiveTimeout);
                lock (_groupLock)
                {
                    if (_stopRequested) throw new CollectiveAbortedException("stopped before training started");
                    _group = group;
                }
                trainer = new Trainer(new TrainerOptions(trial, CheckpointBlobs(a), a.CheckpointPrefix,
                    e => self.Tell(e), () => _stopRequested, group, RunsRoot: Path.GetDirectoryName(a.RunDirectory),
                    TaskObjective: spec.Objective.Kind == ObjectiveKind.Distill ? tokenizer => Distillation(spec, tokenizer, self) : null));
                var outcome = trainer.Run();
                done = new TrainerDone(outcome, trainer.Step, null);
            }
            catch (Exception e)
            {
                // The step is the last one applied, so a trial that fails part-way (a shard damaged mid-run) keeps its
                // real progress; a trainer that never started reports 0 and the coordinator keeps the recorded step.
                done = new TrainerDone(TrialOutcome.Failed, trainer?.CompletedStep ?? 0, $"{e.GetType().Name}: {e.Message}", Transient(e));
            }
            finally
            {
                trainer?.Dispose();
                lock (_teacherLock)
                {
                    _teachers?.Dispose();
                    _teachers = null;
                }
                ProcessMemory.ReleaseAfterTrial();
                if (ProcessMemory.ResidentBytes() is { } resident)
                    Console.WriteLine($"trial {a.TrialId} rank {a.Rank} generation {a.Generation} done: worker resident memory {resident >> 20} MB");
            }
            // Told only after the clean-up: the coordinator may place the next trial here at once, and the forced
            // collection and finalizers above must not run beside that trial's TorchSharp calls. TorchSharp frees the
            // Scalar it makes for an operator (x + y, x * 0.5) in a finalizer, which can run while the call still uses it
            // ("Unknown scalar type"); a new trial that started during the collection failed so.
            self.Tell(done);
            return 0;
        });
        lock (RunningTrainers) RunningTrainers.Add(trainerThread);
        trainerThread.ContinueWith(t => { lock (RunningTrainers) RunningTrainers.Remove(t); }, TaskScheduler.Default);
    }

    /// <summary>The distillation objective of this rank, scoring through a pool over the trial's teachers; warnings
    /// (a teacher lost, requests moved) go to the trial's record.</summary>
    private DistillationObjective Distillation(ExperimentSpec spec, ITokenizer tokenizer, IActorRef self)
    {
        var a = _assignment;
        var pool = new TeacherPool(TokenizerIds.Of(tokenizer), new TeacherPoolOptions
        {
            Log = message => self.Tell(new TrialWarning(a.TrialId, 0, $"teachers: {message}")),
            TeacherLost = (endpoint, reason) => _coordinator.Tell(new TeacherUnreachable(a.TrialId, a.Generation, endpoint.ToString(), reason)),
            Form = spec.Distill.EncoderDecoderTeacher ? TeacherForm.EncoderDecoder : TeacherForm.Causal,
        });
        lock (_teacherLock)
        {
            _teachers = pool;
            pool.UpdateEndpoints(TeacherEndpoints(_teacherEndpoints));
        }
        return new DistillationObjective(spec.Distill, spec.Objective, spec.Seed, tokenizer.Special, request => pool.Score(request));
    }

    private static IReadOnlyList<System.Net.IPEndPoint> TeacherEndpoints(IReadOnlyList<string> endpoints) =>
        endpoints.Select(e => System.Net.IPEndPoint.Parse(e)).ToList();

    /// <summary>The run's checkpoint store: the run folder by default, else the storage URI the run was submitted with,
    /// opened with credentials from this worker's environment (never from the message).</summary>
    private static IBlobStore CheckpointBlobs(AssignRank a) =>
        a.Storage is { } storage
            ? BlobStores.Open(BlobLocation.Parse(storage), options: new AzureBlobStoreOptions
            {
                // Retries go to the worker log (runs/<run>/workers/worker-N.log on the local cluster).
                Retry = StorageRetryOptions.LoggingTo(Console.WriteLine, storage),
            })
            : new LocalFolderBlobStore(a.RunDirectory);
}
