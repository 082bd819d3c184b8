using NUnit.Framework;
using Training.Orchestrator.State;
using Training.Orchestrator.Dashboard;
using Training.Tests.Support;

namespace Training.Tests.Dashboard;

public class DownsamplerTests
{
    [Test]
    public void MinMaxOnGrid_KeepsASpikeAndTheFloorOfEachBucket_InTheirOrder()
    {
        var x = Enumerable.Range(0, 100_000).Select(i => (double)i).ToList();
        var y = x.Select(v => 5 - v / 50_000).ToList();
        y[61_234] = 40; // one divergent step
        var slots = Downsampler.MinMaxOnGrid(x, y, 0, 99_999, 100);
        Assert.Multiple(() =>
        {
            Assert.That(slots, Has.Length.EqualTo(200));
            Assert.That(slots.Max(), Is.EqualTo(40), "the spike survives a 500x reduction");
            Assert.That(slots.Where(double.IsFinite).Min(), Is.EqualTo(y[^1]).Within(1e-12));
            // Bucket 61 (x 61,000..61,999): the spike comes after the bucket's first (largest) value, before its smallest.
            Assert.That(slots[122], Is.EqualTo(40));
            Assert.That(slots[123], Is.EqualTo(y.Skip(61_000).Take(1000).Min()).Within(1e-12));
        });
        var grid = Downsampler.Grid(0, 99_999, 100);
        Assert.That(grid, Is.Ordered.Ascending);
        Assert.That(grid[0], Is.GreaterThan(0).And.LessThan(grid[1]));
    }

    [Test]
    public void MinMaxOnGrid_EmptyBucketsAreNaN_AndOnePointIsKeptOnce()
    {
        var slots = Downsampler.MinMaxOnGrid([0, 10], [1.5, 2.5], 0, 10, 5);
        Assert.That(slots.Count(double.IsFinite), Is.EqualTo(2));
        Assert.That(slots[0], Is.EqualTo(1.5));
        Assert.That(slots[8], Is.EqualTo(2.5));
    }

    [Test]
    public void TrialSeries_FoldsCommittedEvents_AndThenOnlyNewOnes()
    {
        using var dir = new TempDirectory();
        using var store = new StateLocation(StateBackend.Sqlite, dir.Combine("state.db")).Open();
        var entry = new TrialEntry("t0", 0, new Dictionary<string, string>());
        store.CreateRun(new RunManifest("r", "e", "e.yaml", DateTimeOffset.UnixEpoch, [entry]),
            [new TrialStatus("t0", 0, TrialState.Pending, 0, 4, 0, null, null, null, null, null, null, entry.Overrides, DateTimeOffset.UnixEpoch)]);
        void Append(params string[] bodies) => store.Apply(bodies.Select(b => (StateWrite)new AppendEvent("r", "t0", "x", 0, DateTimeOffset.UnixEpoch, b)).ToList());
        var reads = 0;
        var series = new TrialSeries(after => { reads++; return store.ReadEvents("r", "t0", after); });
        Append("""{"type":"start","step":0,"total_steps":4,"parameters":1,"time":"2026-01-01T00:00:00Z"}""",
            """{"type":"step","step":1,"loss":3.5,"accuracy":0.1,"lr":0.001,"grad_norm":1,"tokens_per_second":100,"time":"2026-01-01T00:00:01Z"}""",
            """{"type":"step","step":2,"lo""");
        series.Refresh();
        Assert.That(series.Steps, Is.EqualTo(new long[] { 1 }), "a damaged event is skipped, the rest still shows");
        var folded = series.LastSequence;
        Append("""{"type":"step","step":2,"loss":3.0,"time":"2026-01-01T00:00:03Z"}""",
            """{"type":"eval","step":2,"loss":3.2,"accuracy":0.2,"tokens":64,"time":"2026-01-01T00:00:04Z"}""");
        series.Refresh();
        series.Refresh();
        Assert.Multiple(() =>
        {
            Assert.That(series.Steps, Is.EqualTo(new long[] { 1, 2 }), "events already folded are not folded again");
            Assert.That(series.Loss, Is.EqualTo(new[] { 3.5f, 3.0f }));
            Assert.That(series.StepTime, Is.EqualTo(new[] { 1f, 3f }));
            Assert.That(series.EvalLoss, Is.EqualTo(new[] { 3.2f }));
            Assert.That(series.Attempts, Has.Count.EqualTo(1));
            Assert.That(series.Attempts[0].Seconds, Is.EqualTo(4));
            Assert.That(series.LastSequence, Is.GreaterThan(folded));
            Assert.That(store.ReadEvents("r", "t0", series.LastSequence), Is.Empty, "nothing committed is left unread");
            Assert.That(reads, Is.EqualTo(3));
        });
    }
}
