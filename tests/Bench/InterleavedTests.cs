using NUnit.Framework;
using Training.Bench.Support;

namespace Training.Tests.Bench;

public class InterleavedTests
{
    [Test]
    public void Measure_AlternatesReferenceAndSubjectAndTakesPerPairRatios()
    {
        var order = new List<string>();
        var round = 0;
        // The machine "slows down" every pair, both sides alike: per-pair ratios stay 0.5 although rates halve.
        var result = Interleaved.Measure(4, () => { order.Add("A"); return 100.0 / ++round; }, () => { order.Add("B"); return 50.0 / round; }, warmup: 1);

        Assert.That(string.Concat(order), Is.EqualTo("ABABABABAB"));
        Assert.That(result.Ratios, Has.Count.EqualTo(4));
        Assert.That(result.Ratios, Is.All.EqualTo(0.5).Within(1e-12));
        Assert.That((result.MedianRatio, result.Spread, result.Stable), Is.EqualTo((0.5, 0.0, true)));
        Assert.That(result.Headline(v => v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)), Does.StartWith("0.50 (0.50-0.50"));
    }

    [Test]
    public void Measure_WideSpread_IsNotStableAndGivesNoHeadline()
    {
        var subject = new Queue<double>([10, 20, 30, 11, 12]);
        var result = Interleaved.Measure(5, () => 10, () => subject.Dequeue(), warmup: 0);

        Assert.That(result.MedianRatio, Is.EqualTo(1.2).Within(1e-12));
        Assert.That(result.Spread, Is.EqualTo(2.0).Within(1e-12));
        Assert.That(result.Stable, Is.False);
        Assert.That(result.Headline(v => v.ToString("F1", System.Globalization.CultureInfo.InvariantCulture)), Does.StartWith("no headline: per-pair ratios spread 200%"));
    }

    [Test]
    public void Quantile_InterpolatesBetweenRanks() =>
        Assert.That((Stats.Quantile([1, 2, 3, 4], 0.25), Stats.Median([4, 1, 3, 2]), Stats.Median([5, 1, 3])), Is.EqualTo((1.75, 2.5, 3.0)));

    [Test]
    public void ResultFiles_NamesInputsRelativeToTheRepositoryAndRefusesMachinePaths()
    {
        var root = ResultFiles.RepositoryRoot;
        Assert.That(File.Exists(Path.Combine(root, "Training.sln")), Is.True);
        Assert.That(ResultFiles.Relative(Path.Combine(root, "experiments", "quickstart.yaml")), Is.EqualTo("experiments/quickstart.yaml"));
        Assert.That(ResultFiles.Relative(Path.Combine(Path.GetTempPath(), "x.yaml")), Is.EqualTo("(outside the repository)/x.yaml"));

        var error = Assert.Throws<InvalidOperationException>(() =>
            ResultFiles.ThrowIfMachinePath("r.json", $"{{\"experiment\": \"{Path.Combine(root, "experiments", "quickstart.yaml")}\"}}"));
        Assert.That(error!.Message, Does.Contain("r.json"));
        Assert.DoesNotThrow(() => ResultFiles.ThrowIfMachinePath("r.json", "{\"experiment\": \"experiments/quickstart.yaml\"}"));
    }

    [Test]
    public void ResidentMemory_IsThisProcessesResidentSet() =>
        Assert.That(ResidentMemory.Bytes(), Is.GreaterThan(10L << 20));
}
