using System.Collections.Concurrent;
using NUnit.Framework;
using Training.Orchestrator.State;
using Training.Tests.Support;
using static Training.Tests.State.RunStateStoreContractTests;

namespace Training.Tests.State;

/// <summary>
/// A real store that also remembers each batch it was given (what the writer decided to send, not a stand-in for the
/// database: every call goes through to it).
/// </summary>
internal sealed class RecordingStore(IRunStateStore inner) : IRunStateStore
{
    public ConcurrentQueue<IReadOnlyList<StateWrite>> Batches { get; } = new();

    public string Description => inner.Description;
    public void CreateRun(RunManifest manifest, IReadOnlyList<TrialStatus> statuses) => inner.CreateRun(manifest, statuses);
    public bool RunExists(string runId) => inner.RunExists(runId);
    public RunManifest? FindRun(string runId) => inner.FindRun(runId);
    public IReadOnlyList<RunManifest> ListRuns() => inner.ListRuns();
    public DateTimeOffset? CancelRequested(string runId) => inner.CancelRequested(runId);
    public void SetCancelRequested(string runId, bool requested) => inner.SetCancelRequested(runId, requested);
    public TrialStatus? ReadStatus(string runId, string trialId) => inner.ReadStatus(runId, trialId);
    public IReadOnlyDictionary<string, TrialStatus> ReadStatuses(string runId) => inner.ReadStatuses(runId);

    public void Apply(IReadOnlyList<StateWrite> writes)
    {
        inner.Apply(writes);
        Batches.Enqueue(writes.ToList());
    }

    public IReadOnlyList<StoredEvent> ReadEvents(string runId, string trialId, long afterSequence = 0, int limit = int.MaxValue) =>
        inner.ReadEvents(runId, trialId, afterSequence, limit);
    public IReadOnlyList<StoredEvent> TailEvents(string runId, string trialId, int count) => inner.TailEvents(runId, trialId, count);
    public long Version(string runId) => inner.Version(runId);
    public IReadOnlyDictionary<string, long> Versions() => inner.Versions();
    public IReadOnlyList<AttemptRecord> Attempts(string runId, string trialId) => inner.Attempts(runId, trialId);
    public IReadOnlyList<CheckpointRecord> Checkpoints(string runId, string trialId) => inner.Checkpoints(runId, trialId);
    public void Dispose() => inner.Dispose();
}

[TestFixtureSource(typeof(StateBackends), nameof(StateBackends.Names))]
public class StateWriterTests(string backend)
{
    private static readonly DateTimeOffset T0 = new(2026, 5, 6, 7, 8, 9, 100, TimeSpan.Zero);

    private StateBackends _backends = null!;
    private readonly List<IDisposable> _open = [];

    [OneTimeSetUp]
    public void StartBackend() => _backends = new StateBackends(backend);

    [OneTimeTearDown]
    public void StopBackend() => _backends.Dispose();

    [TearDown]
    public void Close()
    {
        // Writers first: they commit into their stores.
        foreach (var item in Enumerable.Reverse(_open)) item.Dispose();
        _open.Clear();
    }

    /// <summary>A new store with run "r" (trials t0, t1) and a writer over it.</summary>
    private (RecordingStore Store, StateWriter Writer) NewWriter()
    {
        var store = new RecordingStore(SqlRunStateStore.Open(_backends.NewLocation()));
        _open.Add(store);
        Create(store, SimpleRun("r"));
        var writer = new StateWriter(store);
        _open.Add(writer);
        return (store, writer);
    }

    private static TrialStatus Status(string trial, long step) =>
        new(trial, trial == "t0" ? 0 : 1, TrialState.Running, step, 10_000, 42, 1.0 / (step + 1), null, null, 1000 + step, null, null,
            new Dictionary<string, string>(), T0.AddMilliseconds(step));

    private static AppendEvent Event(string trial, int i) => new("r", trial, "step", i, T0.AddMilliseconds(i), $$"""{"i":{{i}}}""");

    [Test]
    public void Flush_WritesBecomeVisible()
    {
        var (store, writer) = NewWriter();
        writer.Write(Event("t0", 1));
        writer.Write(new WriteStatus("r", Status("t0", 1)));
        writer.Write(new BeginAttempt("r", "t0", 1, ["w1"], T0));
        writer.Write(new RecordCheckpoint("r", "t0", 1, "ckpt-1", null, T0));
        writer.Flush();
        Assert.That(store.ReadEvents("r", "t0").Select(e => e.Body), Is.EqualTo(new[] { """{"i":1}""" }));
        Assert.That(store.ReadStatus("r", "t0")!.Step, Is.EqualTo(1));
        Assert.That(store.Attempts("r", "t0"), Has.Count.EqualTo(1));
        Assert.That(store.Checkpoints("r", "t0").Single().CheckpointId, Is.EqualTo("ckpt-1"));
        Assert.That(writer.LastError, Is.Null);
    }

    [Test]
    public void Flush_OnlyEvents_ReturnsAfterTheyCommit()
    {
        var (store, writer) = NewWriter();
        // Events alone leave no pending status behind: Flush must still wait for the batch in flight, not only the queue.
        for (var round = 0; round < 10; round++)
        {
            for (var i = 0; i < 300; i++) writer.Write(Event("t0", round * 300 + i));
            writer.Flush();
            Assert.That(store.ReadEvents("r", "t0"), Has.Count.EqualTo((round + 1) * 300), $"round {round}");
        }
    }

    [Test]
    public void KnownStatus_AfterCommit_IsTheLastWrittenWhileTheTrialIsLive_AndNullOnceItFinished()
    {
        var (_, writer) = NewWriter();
        Assert.That(writer.KnownStatus("r", "t0"), Is.Null, "nothing written here yet: the database answers");
        writer.Write(new WriteStatus("r", Status("t0", 7)));
        writer.Flush();
        Assert.That(writer.PendingStatus("r", "t0"), Is.Null);
        Assert.That(writer.KnownStatus("r", "t0")?.Step, Is.EqualTo(7), "a live trial's status is read back without a query");
        writer.Write(new WriteStatus("r", Status("t0", 8) with { State = TrialState.Completed }));
        Assert.That(writer.KnownStatus("r", "t0")?.State, Is.EqualTo(TrialState.Completed), "the newest, before it commits");
        writer.Flush();
        Assert.That(writer.KnownStatus("r", "t0"), Is.Null, "a finished trial's status is left to the database");
    }

    [Test]
    public void PendingStatus_BeforeCommit_IsTheLatest_AndNullAfter()
    {
        var (store, writer) = NewWriter();
        Assert.That(writer.PendingStatus("r", "t0"), Is.Null);
        writer.Write(new WriteStatus("r", Status("t0", 5)));
        writer.Write(new WriteStatus("r", Status("t0", 6)));
        // Not urgent: the batch waits for the interval, and until it commits the writer answers for it.
        Assert.That(writer.PendingStatus("r", "t0")?.Step, Is.EqualTo(6));
        Assert.That(writer.PendingStatus("r", "t1"), Is.Null, "only the trial written has a pending status");
        // Read-your-writes: at any moment the pending status or else the stored one is the newest.
        for (var i = 0; i < 50; i++)
        {
            var seen = writer.PendingStatus("r", "t0") ?? store.ReadStatus("r", "t0")!;
            Assert.That(seen.Step, Is.EqualTo(6));
        }
        writer.Flush();
        Assert.That(writer.PendingStatus("r", "t0"), Is.Null);
        Assert.That(store.ReadStatus("r", "t0")!.Step, Is.EqualTo(6));
    }

    [Test]
    public void Write_ManyStatusesForOneTrial_OnlyTheLatestIsWritten()
    {
        var (store, writer) = NewWriter();
        for (var step = 1; step <= 500; step++)
        {
            writer.Write(new WriteStatus("r", Status("t0", step)));
            if (step % 2 == 0) writer.Write(new WriteStatus("r", Status("t1", step)));
        }
        writer.Flush();
        Assert.That(store.ReadStatus("r", "t0")!.Step, Is.EqualTo(500));
        Assert.That(store.ReadStatus("r", "t1")!.Step, Is.EqualTo(500));
        var statusWrites = store.Batches.SelectMany(b => b.OfType<WriteStatus>()).ToList();
        Assert.That(statusWrites, Has.Count.LessThan(100), "superseded statuses are dropped, not written");
        foreach (var batch in store.Batches)
            Assert.That(batch.OfType<WriteStatus>().Select(w => w.TrialId), Is.Unique, "one status per trial in a batch");
    }

    [Test]
    public void Write_ThousandsOfEventsAcrossBatches_KeepTheirOrder()
    {
        var (store, writer) = NewWriter();
        for (var i = 0; i < 2000; i++)
        {
            // Urgent now and then, so they span many batches.
            writer.Write(Event("t0", i), urgent: i % 100 == 0);
            if (i % 250 == 0) writer.Write(new WriteStatus("r", Status("t0", i)), urgent: true);
            if (i % 400 == 0) Thread.Sleep(20);
        }
        writer.Flush();
        var events = store.ReadEvents("r", "t0");
        Assert.That(events, Has.Count.EqualTo(2000));
        Assert.That(events.Select(e => e.Sequence), Is.Ordered.Ascending.And.Unique);
        Assert.That(events.Select(e => e.Body), Is.EqualTo(Enumerable.Range(0, 2000).Select(i => $$"""{"i":{{i}}}""")));
        Assert.That(store.Batches.Count, Is.GreaterThan(1), "the writes went in several batches");
        Assert.That(store.ReadStatus("r", "t0")!.Step, Is.EqualTo(1750));
    }

    [Test]
    public void Dispose_CommitsWhatIsQueued()
    {
        var (store, writer) = NewWriter();
        for (var i = 0; i < 10; i++) writer.Write(Event("t1", i));
        writer.Write(new WriteStatus("r", Status("t1", 9)));
        writer.Write(new EndAttempt("r", "t1", "completed", 9, null, T0));
        writer.Dispose();
        Assert.That(store.ReadEvents("r", "t1"), Has.Count.EqualTo(10));
        Assert.That(store.ReadStatus("r", "t1")!.Step, Is.EqualTo(9));
        Assert.That(() => writer.Write(Event("t1", 10)), Throws.InstanceOf<ObjectDisposedException>());
    }
}

/// <summary>The writer through a PostgreSQL outage: nothing written while the server is down is lost or doubled.</summary>
public class StateWriterOutageTests
{
    private PostgresServer _server = null!;

    [OneTimeSetUp]
    public void StartServer() => _server = PostgresServer.Start();

    [OneTimeTearDown]
    public void StopServer() => _server.Dispose();

    [Test]
    public void Flush_AfterTheServerComesBack_CommitsEverythingFromTheOutageOnceInOrder()
    {
        var t0 = DateTimeOffset.UnixEpoch;
        using var store = SqlRunStateStore.Open(StateLocation.Parse(_server.Uri(_server.CreateDatabase())));
        Create(store, SimpleRun("r"));
        using var writer = new StateWriter(store);
        AppendEvent Event(int i) => new("r", "t0", "step", i, t0.AddSeconds(i), $$"""{"i":{{i}}}""");
        TrialStatus Status(int step) => Initial(SimpleRun("r").Trials[0]) with { State = TrialState.Running, Step = step, Loss = step / 10.0 };
        for (var i = 0; i < 5; i++) writer.Write(Event(i));
        writer.Write(new WriteStatus("r", Status(4)));
        writer.Flush();

        _server.Stop();
        for (var i = 5; i < 300; i++)
        {
            writer.Write(Event(i), urgent: i % 50 == 0);
            writer.Write(new WriteStatus("r", Status(i)));
        }
        writer.Write(new RecordCheckpoint("r", "t0", 299, "ckpt-299", null, t0));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (writer.LastError is null && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.That(writer.LastError, Is.Not.Null, "a batch was tried and failed while the server was down");
        Thread.Sleep(1000);
        Assert.That(writer.PendingStatus("r", "t0")?.Step, Is.EqualTo(299), "the status not yet committed is still answered from the writer");

        _server.StartAgain();
        writer.Flush(TimeSpan.FromSeconds(30));
        Assert.That(writer.LastError, Is.Null);
        var events = store.ReadEvents("r", "t0");
        Assert.That(events.Select(e => e.Body), Is.EqualTo(Enumerable.Range(0, 300).Select(i => $$"""{"i":{{i}}}""")), "every event once, in order");
        Assert.That(events.Select(e => e.Sequence), Is.Ordered.Ascending.And.Unique);
        Assert.That(store.ReadStatus("r", "t0")!.Step, Is.EqualTo(299));
        Assert.That(store.Checkpoints("r", "t0").Single().Step, Is.EqualTo(299));
        Assert.That(writer.PendingStatus("r", "t0"), Is.Null);
    }
}
