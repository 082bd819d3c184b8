using System.Data.Common;
using System.Diagnostics;
using NUnit.Framework;
using Training.Orchestrator.State;
using Training.Tests.Support;

namespace Training.Tests.State;

/// <summary>What every <see cref="IRunStateStore"/> backend must do alike: each test runs on SQLite and on a real PostgreSQL.</summary>
[TestFixtureSource(typeof(StateBackends), nameof(StateBackends.Names))]
public class RunStateStoreContractTests(string backend)
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 4, 5, 6, 7, 891, TimeSpan.Zero);

    private StateBackends _backends = null!;
    private readonly List<IDisposable> _open = [];

    [OneTimeSetUp]
    public void StartBackend() => _backends = new StateBackends(backend);

    [OneTimeTearDown]
    public void StopBackend() => _backends.Dispose();

    [TearDown]
    public void CloseStores()
    {
        foreach (var store in _open) store.Dispose();
        _open.Clear();
    }

    private SqlRunStateStore Open(StateLocation location)
    {
        var store = SqlRunStateStore.Open(location);
        _open.Add(store);
        return store;
    }

    private SqlRunStateStore NewStore() => Open(_backends.NewLocation());

    internal static TrialStatus Initial(TrialEntry trial, long totalSteps = 100) =>
        new(trial.Id, trial.Index, TrialState.Pending, 0, totalSteps, 0, null, null, null, null, null, null, trial.Overrides, T0);

    /// <summary>A run with two trials (t0, t1) and no stages.</summary>
    internal static RunManifest SimpleRun(string id, DateTimeOffset? created = null) =>
        new(id, "exp", "exp.yaml", created ?? T0,
            [new TrialEntry("t0", 0, new Dictionary<string, string>()), new TrialEntry("t1", 1, new Dictionary<string, string> { ["lr"] = "0.1" })]);

    internal static void Create(IRunStateStore store, RunManifest run) => store.CreateRun(run, run.Trials.Select(t => Initial(t)).ToList());

    /// <summary>A pipeline run: stages, overrides, init_from and teacher_from sources, a storage URI.</summary>
    private static RunManifest PipelineRun(string id) =>
        new(id, "pipeline", "/experiments/pipeline.yaml", T0,
            [
                new TrialEntry("pre-0", 0, new Dictionary<string, string> { ["optimizer.learningRate"] = "3e-4", ["model.layers"] = "4" }, "pretrain"),
                new TrialEntry("pre-1", 1, new Dictionary<string, string> { ["optimizer.learningRate"] = "1e-3" }, "pretrain"),
                new TrialEntry("ft-0", 2, new Dictionary<string, string>(), "finetune", InitFrom: new StageSource("pretrain", "BestEval")),
                new TrialEntry("kd-0", 3, new Dictionary<string, string> { ["distill.temperature"] = "2" }, "distill",
                    InitFrom: new StageSource("pretrain", "1"), TeacherFrom: new StageSource("finetune", "Last")),
            ],
            "azure://devstoreaccount1/checkpoints/" + id,
            [new StageEntry("pretrain", []), new StageEntry("finetune", ["pretrain"]), new StageEntry("distill", ["pretrain", "finetune"])]);

    private static void AssertSameRun(RunManifest? actual, RunManifest expected)
    {
        Assert.That(actual, Is.Not.Null, $"run {expected.Id}");
        Assert.Multiple(() =>
        {
            Assert.That(actual!.Id, Is.EqualTo(expected.Id));
            Assert.That(actual.Experiment, Is.EqualTo(expected.Experiment));
            Assert.That(actual.Source, Is.EqualTo(expected.Source));
            Assert.That(actual.CreatedAt, Is.EqualTo(expected.CreatedAt));
            Assert.That(actual.CreatedAt.ToUnixTimeMilliseconds(), Is.EqualTo(expected.CreatedAt.ToUnixTimeMilliseconds()));
            Assert.That(actual.Storage, Is.EqualTo(expected.Storage));
            Assert.That(actual.Trials.Select(t => t.Id), Is.EqualTo(expected.Trials.Select(t => t.Id)), "trials in index order");
            foreach (var (a, e) in actual.Trials.Zip(expected.Trials))
            {
                Assert.That(a.Index, Is.EqualTo(e.Index), a.Id);
                Assert.That(a.Overrides, Is.EquivalentTo(e.Overrides), a.Id + " overrides");
                Assert.That(a.Stage, Is.EqualTo(e.Stage), a.Id);
                Assert.That(a.InitFrom, Is.EqualTo(e.InitFrom), a.Id + " init_from");
                Assert.That(a.TeacherFrom, Is.EqualTo(e.TeacherFrom), a.Id + " teacher_from");
            }
            if (expected.Stages is null) Assert.That(actual.Stages, Is.Null);
            else
            {
                Assert.That(actual.Stages, Is.Not.Null);
                Assert.That(actual.Stages!.Select(s => s.Name), Is.EqualTo(expected.Stages!.Select(s => s.Name)));
                Assert.That(actual.Stages!.Select(s => string.Join(",", s.After)), Is.EqualTo(expected.Stages!.Select(s => string.Join(",", s.After))));
            }
        });
    }

    [Test]
    public void CreateRun_ThenFindAndList_RoundTripsEveryField()
    {
        var store = NewStore();
        var pipeline = PipelineRun("pipe-1");
        var simple = SimpleRun("simple-1", T0.AddMinutes(-5));
        store.CreateRun(pipeline, pipeline.Trials.Select(t => Initial(t, 1000 + t.Index)).ToList());
        Create(store, simple);

        AssertSameRun(store.FindRun("pipe-1"), pipeline);
        AssertSameRun(store.FindRun("simple-1"), simple);
        Assert.That(store.FindRun("nope"), Is.Null);
        Assert.That(store.RunExists("pipe-1") && !store.RunExists("nope"), Is.True);
        var listed = store.ListRuns();
        Assert.That(listed.Select(r => r.Id), Is.EqualTo(new[] { "simple-1", "pipe-1" }), "oldest first");
        AssertSameRun(listed[1], pipeline);
        Assert.That(listed[0].Stages, Is.Null, "a run without stages has none, not an empty list");

        var statuses = store.ReadStatuses("pipe-1");
        Assert.That(statuses.Keys, Is.EquivalentTo(pipeline.Trials.Select(t => t.Id)));
        foreach (var trial in pipeline.Trials)
        {
            var status = store.ReadStatus("pipe-1", trial.Id)!;
            AssertSameStatus(status, Initial(trial, 1000 + trial.Index));
            AssertSameStatus(statuses[trial.Id], status);
        }
        Assert.That(store.ReadStatus("pipe-1", "nope"), Is.Null);
        Assert.That(store.ReadStatuses("nope"), Is.Empty);
    }

    [Test]
    public void CreateRun_SameIdTwice_ThrowsAndKeepsTheFirst()
    {
        var store = NewStore();
        var first = PipelineRun("r");
        store.CreateRun(first, first.Trials.Select(t => Initial(t)).ToList());
        var second = SimpleRun("r", T0.AddDays(1));
        var error = Assert.Throws<ArgumentException>(() => Create(store, second));
        Assert.That(error!.Message, Does.Contain("r"));
        AssertSameRun(store.FindRun("r"), first);
        Assert.That(store.ListRuns(), Has.Count.EqualTo(1));
        Assert.That(store.ReadStatuses("r").Keys, Is.EquivalentTo(first.Trials.Select(t => t.Id)));
    }

    internal static void AssertSameStatus(TrialStatus actual, TrialStatus expected)
    {
        Assert.Multiple(() =>
        {
            Assert.That(actual.TrialId, Is.EqualTo(expected.TrialId));
            Assert.That(actual.Index, Is.EqualTo(expected.Index));
            Assert.That(actual.State, Is.EqualTo(expected.State));
            Assert.That(actual.Step, Is.EqualTo(expected.Step));
            Assert.That(actual.TotalSteps, Is.EqualTo(expected.TotalSteps));
            Assert.That(actual.Parameters, Is.EqualTo(expected.Parameters));
            Assert.That(actual.Loss, Is.EqualTo(expected.Loss));
            Assert.That(actual.EvalLoss, Is.EqualTo(expected.EvalLoss));
            Assert.That(actual.EvalAccuracy, Is.EqualTo(expected.EvalAccuracy));
            Assert.That(actual.TokensPerSecond, Is.EqualTo(expected.TokensPerSecond));
            Assert.That(actual.LastCheckpoint, Is.EqualTo(expected.LastCheckpoint));
            Assert.That(actual.Error, Is.EqualTo(expected.Error));
            Assert.That(actual.Overrides, Is.EquivalentTo(expected.Overrides));
            Assert.That(actual.UpdatedAt, Is.EqualTo(expected.UpdatedAt));
            Assert.That(actual.InitializedFrom, Is.EqualTo(expected.InitializedFrom));
            Assert.That(actual.EvalExactMatch, Is.EqualTo(expected.EvalExactMatch));
        });
    }

    [Test]
    public void Apply_WriteStatus_RoundTripsEveryField()
    {
        var store = NewStore();
        var run = SimpleRun("r");
        Create(store, run);
        var written = new TrialStatus("t1", 1, TrialState.Running, 420, 1000, 123_456_789_012, 2.718281828459045, 3.25, 0.125, 98765.4321,
            "ckpt-000420", "rank 2 lost: connection reset", run.Trials[1].Overrides, T0.AddSeconds(90.123), "base-run/pre-0", 0.0625);
        store.Apply([new WriteStatus("r", written)]);
        AssertSameStatus(store.ReadStatus("r", "t1")!, written);
        AssertSameStatus(store.ReadStatus("r", "t0")!, Initial(run.Trials[0]));

        // Back to unknowns: every nullable field is cleared, not kept.
        var cleared = Initial(run.Trials[1]) with { State = TrialState.Failed, UpdatedAt = T0.AddHours(1) };
        store.Apply([new WriteStatus("r", cleared)]);
        AssertSameStatus(store.ReadStatus("r", "t1")!, cleared);
        foreach (var state in Enum.GetValues<TrialState>())
        {
            store.Apply([new WriteStatus("r", cleared with { State = state })]);
            Assert.That(store.ReadStatus("r", "t1")!.State, Is.EqualTo(state));
        }
    }

    [Test]
    public void Apply_NonFiniteMetrics_ReadBackAsNull()
    {
        var store = NewStore();
        var run = SimpleRun("r");
        Create(store, run);
        var status = Initial(run.Trials[0]) with
        {
            Loss = double.NaN, EvalLoss = double.PositiveInfinity, EvalAccuracy = double.NegativeInfinity, TokensPerSecond = double.NaN,
            EvalExactMatch = double.PositiveInfinity,
        };
        store.Apply([new WriteStatus("r", status)]);
        var read = store.ReadStatus("r", "t0")!;
        Assert.That(new[] { read.Loss, read.EvalLoss, read.EvalAccuracy, read.TokensPerSecond, read.EvalExactMatch }, Is.All.Null);
    }

    private static AppendEvent Event(string run, string trial, int i) =>
        new(run, trial, i % 10 == 0 ? "eval" : "step", i, T0.AddMilliseconds(i), $$"""{"type":"step","step":{{i}},"trial":"{{trial}}"}""");

    [Test]
    public void ReadEvents_Paged_ReturnsEventsInOrderWithIncreasingSequences()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        Create(store, SimpleRun("other"));
        // Interleaved with the other trial and the other run, in several batches.
        for (var batch = 0; batch < 5; batch++)
            store.Apply(Enumerable.Range(batch * 10, 10)
                .SelectMany(i => new StateWrite[] { Event("r", "t0", i), Event("r", "t1", i), Event("other", "t0", i) }).ToList());

        var pages = new List<StoredEvent>();
        long after = 0;
        for (var page = store.ReadEvents("r", "t0", after, 7); page.Count > 0; page = store.ReadEvents("r", "t0", after, 7))
        {
            Assert.That(page, Has.Count.LessThanOrEqualTo(7));
            pages.AddRange(page);
            after = page[^1].Sequence;
        }
        Assert.That(pages.Select(e => e.Step), Is.EqualTo(Enumerable.Range(0, 50).Select(i => (long)i)));
        Assert.That(pages.Select(e => e.Sequence), Is.Ordered.Ascending.And.Unique);
        Assert.That(pages.Select(e => e.Body), Is.All.Contains("\"trial\":\"t0\""), "no other trial's events");
        var expected = Event("r", "t0", 30);
        var e30 = pages[30];
        Assert.Multiple(() =>
        {
            Assert.That(e30.Type, Is.EqualTo(expected.Type));
            Assert.That(e30.Time, Is.EqualTo(expected.Time));
            Assert.That(e30.Body, Is.EqualTo(expected.Body));
        });
        Assert.That(store.ReadEvents("r", "t0"), Has.Count.EqualTo(50));
        Assert.That(store.ReadEvents("other", "t0").Select(e => e.Sequence), Is.Not.SubsetOf(pages.Select(e => e.Sequence)));
        Assert.That(store.ReadEvents("r", "t0", pages[^1].Sequence), Is.Empty);
        Assert.That(store.ReadEvents("r", "nope"), Is.Empty);
    }

    [Test]
    public void TailEvents_ReturnsTheLastNOldestFirst()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        Create(store, SimpleRun("other"));
        store.Apply(Enumerable.Range(0, 20).SelectMany(i => new StateWrite[] { Event("r", "t0", i), Event("r", "t1", 100 + i), Event("other", "t0", 200 + i) }).ToList());
        var tail = store.TailEvents("r", "t0", 5);
        Assert.That(tail.Select(e => e.Step), Is.EqualTo(new long[] { 15, 16, 17, 18, 19 }));
        Assert.That(tail.Select(e => e.Sequence), Is.Ordered.Ascending);
        Assert.That(store.TailEvents("r", "t0", 100).Select(e => e.Step), Is.EqualTo(Enumerable.Range(0, 20).Select(i => (long)i)));
        Assert.That(store.TailEvents("r", "t0", 0), Is.Empty);
    }

    [Test]
    public void Attempts_BeginStartEnd_NumbersAndClosesThem()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        store.Apply([new BeginAttempt("r", "t0", 1, ["w1", "w2"], T0), new AttemptStarted("r", "t0", 0, null)]);
        store.Apply([new EndAttempt("r", "t0", "restarted", 40, "worker w2 lost", T0.AddMinutes(1))]);
        store.Apply([new BeginAttempt("r", "t0", 2, ["w1", "w3"], T0.AddMinutes(2))]);
        store.Apply([new AttemptStarted("r", "t0", 40, "ckpt-40", "ckpt-60: model.safetensors has 10 bytes, manifest says 20")]);
        // The coordinator died: the next placement ends the open one as interrupted.
        store.Apply([new BeginAttempt("r", "t0", 3, ["w4"], T0.AddMinutes(3))]);

        var attempts = store.Attempts("r", "t0");
        Assert.That(attempts.Select(a => a.Number), Is.EqualTo(new[] { 1, 2, 3 }));
        var (a1, a2, a3) = (attempts[0], attempts[1], attempts[2]);
        Assert.Multiple(() =>
        {
            Assert.That(a1.Generation, Is.EqualTo(1));
            Assert.That(a1.Workers, Is.EqualTo(new[] { "w1", "w2" }));
            Assert.That(a1.StartedAt, Is.EqualTo(T0));
            Assert.That(a1.StartStep, Is.EqualTo(0));
            Assert.That(a1.ResumedFrom, Is.Null);
            Assert.That(a1.EndedAt, Is.EqualTo(T0.AddMinutes(1)));
            Assert.That(a1.EndStep, Is.EqualTo(40));
            Assert.That(a1.Outcome, Is.EqualTo("restarted"));
            Assert.That(a1.Reason, Is.EqualTo("worker w2 lost"));
            Assert.That(a1.Skipped, Is.Null);
            Assert.That(a2.Skipped, Is.EqualTo("ckpt-60: model.safetensors has 10 bytes, manifest says 20"));

            Assert.That(a2.Generation, Is.EqualTo(2));
            Assert.That(a2.StartStep, Is.EqualTo(40));
            Assert.That(a2.ResumedFrom, Is.EqualTo("ckpt-40"));
            Assert.That(a2.Outcome, Is.EqualTo("interrupted"));
            Assert.That(a2.EndedAt, Is.EqualTo(T0.AddMinutes(3)));
            Assert.That(a2.EndStep, Is.Null, "nobody knew the step it ended at");

            Assert.That(a3.Workers, Is.EqualTo(new[] { "w4" }));
            Assert.That(a3.StartStep, Is.Null);
            Assert.That(a3.EndedAt, Is.Null);
            Assert.That(a3.Outcome, Is.Null);
        });
        Assert.That(store.Attempts("r", "t1"), Is.Empty, "another trial's attempts are its own");

        store.Apply([new EndAttempt("r", "t0", "completed", 100, null, T0.AddMinutes(4))]);
        var closed = store.Attempts("r", "t0");
        Assert.That(closed[2].Outcome, Is.EqualTo("completed"));
        Assert.That(closed[2].EndStep, Is.EqualTo(100));
        Assert.That(closed[1].Outcome, Is.EqualTo("interrupted"), "only the open attempt is closed");
    }

    [Test]
    public void EndAttempt_NoOpenAttempt_ChangesNothing()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        store.Apply([new EndAttempt("r", "t0", "failed", 5, "before any placement", T0)]);
        Assert.That(store.Attempts("r", "t0"), Is.Empty);
        store.Apply([new BeginAttempt("r", "t0", 1, ["w1"], T0), new EndAttempt("r", "t0", "completed", 10, null, T0.AddSeconds(1))]);
        store.Apply([new EndAttempt("r", "t0", "failed", 99, "late", T0.AddSeconds(2)), new AttemptStarted("r", "t0", 77, "x")]);
        var only = store.Attempts("r", "t0").Single();
        Assert.Multiple(() =>
        {
            Assert.That(only.Outcome, Is.EqualTo("completed"));
            Assert.That(only.EndStep, Is.EqualTo(10));
            Assert.That(only.EndedAt, Is.EqualTo(T0.AddSeconds(1)));
            Assert.That(only.Reason, Is.Null);
            Assert.That(only.StartStep, Is.Null, "a closed attempt does not take a late start");
        });
    }

    [Test]
    public void RecordCheckpoint_ListsByStep_AndTheSameIdTwiceIsOneRow()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        store.Apply([
            new RecordCheckpoint("r", "t0", 200, "ckpt-200", "trials/t0/checkpoints/ckpt-200", T0.AddSeconds(2)),
            new RecordCheckpoint("r", "t0", 100, "ckpt-100", null, T0.AddSeconds(1)),
            new RecordCheckpoint("r", "t1", 100, "ckpt-100", "other", T0),
        ]);
        store.Apply([new RecordCheckpoint("r", "t0", 100, "ckpt-100", "moved", T0.AddSeconds(3))]);
        var checkpoints = store.Checkpoints("r", "t0");
        Assert.That(checkpoints.Select(c => c.CheckpointId), Is.EqualTo(new[] { "ckpt-100", "ckpt-200" }));
        Assert.That(checkpoints[0], Is.EqualTo(new CheckpointRecord(100, "ckpt-100", "moved", T0.AddSeconds(3))), "recorded again: updated, not duplicated");
        Assert.That(checkpoints[1], Is.EqualTo(new CheckpointRecord(200, "ckpt-200", "trials/t0/checkpoints/ckpt-200", T0.AddSeconds(2))));
        Assert.That(store.Checkpoints("r", "t1").Single().Location, Is.EqualTo("other"));
    }

    [Test]
    public void SetCancelRequested_SetAndClear_RoundTripsAndBumpsVersion()
    {
        var store = NewStore();
        Create(store, SimpleRun("r"));
        Create(store, SimpleRun("other"));
        Assert.That(store.CancelRequested("r"), Is.Null);
        var before = store.Version("r");
        var asked = DateTimeOffset.UtcNow;
        store.SetCancelRequested("r", true);
        Assert.That(store.CancelRequested("r"), Is.Not.Null.And.InRange(asked.AddSeconds(-2), asked.AddSeconds(5)));
        Assert.That(store.CancelRequested("other"), Is.Null);
        var afterSet = store.Version("r");
        Assert.That(afterSet, Is.GreaterThan(before));
        store.SetCancelRequested("r", false);
        Assert.That(store.CancelRequested("r"), Is.Null);
        Assert.That(store.Version("r"), Is.GreaterThan(afterSet));
    }

    [Test]
    public void Version_GrowsOnApply_AndVersionsHasEveryRun()
    {
        var store = NewStore();
        Create(store, SimpleRun("a"));
        Create(store, SimpleRun("b"));
        Assert.That(store.Version("nope"), Is.EqualTo(0));
        var a0 = store.Version("a");
        var b0 = store.Version("b");
        store.Apply([Event("a", "t0", 1)]);
        var a1 = store.Version("a");
        Assert.That(a1, Is.GreaterThan(a0));
        Assert.That(store.Version("b"), Is.EqualTo(b0), "a write to one run leaves the other's version");
        store.Apply([new WriteStatus("a", Initial(SimpleRun("a").Trials[0]) with { Step = 3 }), new WriteStatus("b", Initial(SimpleRun("b").Trials[1]) with { Step = 4 })]);
        var versions = store.Versions();
        Assert.That(versions.Keys, Is.EquivalentTo(new[] { "a", "b" }));
        Assert.That(versions["a"], Is.GreaterThan(a1));
        Assert.That(versions["b"], Is.GreaterThan(b0));
        Assert.That(versions["a"], Is.EqualTo(store.Version("a")));
    }

    [Test]
    public void Apply_BatchWithAFailingWrite_CommitsNothingOfIt()
    {
        var store = NewStore();
        var run = SimpleRun("r");
        Create(store, run);
        store.Apply([Event("r", "t0", 1)]);
        var version = store.Version("r");
        var before = store.ReadStatus("r", "t0")!;
        StateWrite[] batch =
        [
            Event("r", "t0", 2),
            new WriteStatus("r", before with { State = TrialState.Running, Step = 50 }),
            new BeginAttempt("r", "t0", 1, ["w1"], T0),
            new RecordCheckpoint("r", "t0", 50, "ckpt-50", null, T0),
            new RecordCheckpoint("r", "t0", 60, null!, null, T0), // checkpoint_id is NOT NULL
            Event("r", "t0", 3),
        ];
        Assert.That(() => store.Apply(batch), Throws.InstanceOf<DbException>());
        Assert.That(store.ReadEvents("r", "t0").Select(e => e.Step), Is.EqualTo(new long[] { 1 }));
        AssertSameStatus(store.ReadStatus("r", "t0")!, before);
        Assert.That(store.Attempts("r", "t0"), Is.Empty);
        Assert.That(store.Checkpoints("r", "t0"), Is.Empty);
        Assert.That(store.Version("r"), Is.EqualTo(version));
        // The store is still usable afterwards (the failed transaction did not poison a pooled connection).
        store.Apply([Event("r", "t0", 4)]);
        Assert.That(store.ReadEvents("r", "t0").Select(e => e.Step), Is.EqualTo(new long[] { 1, 4 }));
    }

    // StateSchema is internal to the orchestrator: these tests know it has two migrations.
    private const int LatestSchema = 2;

    [Test]
    public void Open_NewDatabase_IsAtTheLatestSchema_AndReopeningAppliesNothing()
    {
        var location = _backends.NewLocation();
        var store = Open(location);
        Assert.That(store.SchemaVersion(), Is.EqualTo(LatestSchema));
        Create(store, SimpleRun("r"));
        store.Dispose();
        var again = Open(location);
        Assert.That(again.SchemaVersion(), Is.EqualTo(LatestSchema));
        AssertSameRun(again.FindRun("r"), SimpleRun("r"));
        using var raw = _backends.RawConnection(location);
        Assert.That(Convert.ToInt64(StateBackends.Scalar(raw, "SELECT COUNT(*) FROM schema_version")), Is.EqualTo(LatestSchema));
    }

    [Test]
    public void Open_VersionOneDatabase_IsMigratedInPlace_AndKeepsWhatItHeld()
    {
        var location = _backends.NewLocation();
        var store = Open(location);
        Create(store, SimpleRun("r"));
        store.Dispose();
        // Back to what an orchestrator of schema 1 left: no attempts.skipped column, one version row.
        using (var raw = _backends.RawConnection(location))
        {
            StateBackends.Scalar(raw, "ALTER TABLE attempts DROP COLUMN skipped");
            StateBackends.Scalar(raw, "DELETE FROM schema_version WHERE version = 2");
        }
        var again = Open(location);
        Assert.That(again.SchemaVersion(), Is.EqualTo(LatestSchema));
        AssertSameRun(again.FindRun("r"), SimpleRun("r"));
        using var check = _backends.RawConnection(location);
        Assert.That(Convert.ToInt64(StateBackends.Scalar(check, "SELECT COUNT(*) FROM attempts WHERE skipped IS NULL")), Is.GreaterThanOrEqualTo(0),
            "the column is back");
    }

    [Test]
    public void Open_DatabaseNewerThanTheProgram_IsRefusedNamingTheVersion()
    {
        var location = _backends.NewLocation();
        Open(location).Dispose();
        using (var raw = _backends.RawConnection(location))
            StateBackends.Scalar(raw, "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)");
        var error = Assert.Throws<RunStateStoreException>(() => Open(location));
        Assert.That(error!.Message, Does.Contain("99").And.Contain("newer orchestrator"));
    }

    [Test]
    public void Open_NewDatabaseFromFourThreadsAtOnce_AllSucceedAndMigrateOnce()
    {
        var location = _backends.NewLocation();
        using var start = new Barrier(4);
        var stores = new SqlRunStateStore[4];
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, 4).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            // Caught here: an exception on a plain thread would take the test host down instead of failing the test.
            try { stores[i] = SqlRunStateStore.Open(location); } catch (Exception e) { errors.Enqueue(e); }
        })).ToList();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        foreach (var store in stores) if (store is not null) _open.Add(store);
        Assert.That(errors.Select(e => e.Message), Is.Empty, "every open succeeded");
        Assert.That(stores.Select(s => s.SchemaVersion()), Is.All.EqualTo(LatestSchema));
        using var raw = _backends.RawConnection(location);
        Assert.That(Convert.ToInt64(StateBackends.Scalar(raw, "SELECT COUNT(*) FROM schema_version")), Is.EqualTo(LatestSchema));
        Create(stores[3], SimpleRun("r"));
        Assert.That(stores[0].RunExists("r"), Is.True);
    }

    [Test]
    public void Parse_BothForms_AndRefusesBadOnesWithoutThePassword()
    {
        var sqlite = StateLocation.Parse("sqlite:relative/state.db");
        Assert.That(sqlite.Backend, Is.EqualTo(StateBackend.Sqlite));
        Assert.That(sqlite.Target, Is.EqualTo(Path.GetFullPath("relative/state.db")));
        Assert.That(sqlite.ToString(), Is.EqualTo("sqlite:" + Path.GetFullPath("relative/state.db")));

        const string uri = "postgres://user:s3cr3t-pw@db.example:5433/runs?sslmode=disable";
        var postgres = StateLocation.Parse(uri);
        Assert.That(postgres.Backend, Is.EqualTo(StateBackend.Postgres));
        Assert.That(postgres.Target, Is.EqualTo(uri));
        Assert.That(postgres.ToString(), Is.EqualTo("postgres://user:***@db.example:5433/runs?sslmode=disable"));
        Assert.That(StateLocation.Redacted(uri), Does.Not.Contain("s3cr3t-pw").And.Contain("db.example:5433/runs"));
        // Characters a URI would escape: the password is hidden as written, not only in its escaped form.
        Assert.That(StateLocation.Parse("postgres://user:s3cr3t pw%@db.example/runs").ToString(), Does.Not.Contain("s3cr3t"));
        Assert.That(StateLocation.Redacted("postgres://user:s3cr3t-pw@db.example:notaport/runs"), Is.EqualTo("postgres://user:***@db.example:notaport/runs"));
        Assert.That(StateLocation.Parse("postgresql://u@h/d").Backend, Is.EqualTo(StateBackend.Postgres));

        foreach (var bad in new[]
                 {
                     "sqlite:", "postgres://user:s3cr3t-pw@db.example:5433", "postgres://user:s3cr3t-pw@db.example:5433/",
                     "postgres://user:s3cr3t-pw@db.example/a/b", "http://user:s3cr3t-pw@db.example/runs", "postgres://user:s3cr3t-pw@db.example/runs?nonsense=1",
                     "postgres://user:s3cr3t-pw@db.example:notaport/runs",
                     "postgres://user:s3cr3t-pw@/runs", "state.db", "",
                 })
        {
            var error = Assert.Throws<ArgumentException>(() => StateLocation.Parse(bad), bad);
            Assert.That(error!.Message, Does.Not.Contain("s3cr3t-pw"), bad);
        }
    }
}

/// <summary>PostgreSQL only: a server that is not there (SQLite has none).</summary>
public class PostgresStoreDownTests
{
    [Test]
    public void Open_ServerDown_FailsWithinSecondsNamingTheHost()
    {
        var down = StateLocation.Parse($"postgres://postgres:pw@127.0.0.1:{Azurite.FreePort()}/runs");
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<RunStateStoreException>(() => SqlRunStateStore.Open(down));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)));
        Assert.That(error!.Message, Does.Contain("127.0.0.1").And.Not.Contain(":pw@"));
    }
}

/// <summary>SQLite only: a file that cannot be created is refused like a server that is down.</summary>
public class SqliteStoreUnreachableTests
{
    [Test]
    public void Open_FolderCannotBeCreated_ThrowsRunStateStoreException()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Combine("a-file"), "");
        var location = StateLocation.Parse("sqlite:" + dir.Combine("a-file", "state.db"));
        var error = Assert.Throws<RunStateStoreException>(() => SqlRunStateStore.Open(location));
        Assert.That(error!.Message, Does.Contain(dir.Combine("a-file", "state.db")));
    }
}
