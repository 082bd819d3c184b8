using NUnit.Framework;
using Training.Shared.Training;

namespace Training.Tests.Training;

public class LearningRateScheduleTests
{
    [Test]
    public void Cosine_WarmupThenHalfCosine_EndsAtMinRatio()
    {
        var s = new CosineSchedule(1e-3, WarmupSteps: 10, TotalSteps: 110, MinLrRatio: 0.1);
        Assert.Multiple(() =>
        {
            Assert.That(s.At(1), Is.EqualTo(1e-4).Within(1e-12));
            Assert.That(s.At(10), Is.EqualTo(1e-3).Within(1e-12));
            Assert.That(s.At(60), Is.EqualTo(1e-4 + 0.9e-3 * 0.5).Within(1e-12), "halfway down the cosine");
            Assert.That(s.At(110), Is.EqualTo(1e-4).Within(1e-12));
        });
        for (long step = 11; step < 110; step++) Assert.That(s.At(step + 1), Is.LessThanOrEqualTo(s.At(step)));
    }

    [Test]
    public void WarmupStableDecay_StableThenOneMinusSqrtCooldown()
    {
        var s = new WarmupStableDecaySchedule(1e-3, WarmupSteps: 10, TotalSteps: 100, MinLrRatio: 0, DecayFraction: 0.2);
        Assert.Multiple(() =>
        {
            Assert.That(s.At(5), Is.EqualTo(5e-4).Within(1e-12));
            Assert.That(s.At(50), Is.EqualTo(1e-3), "stable phase holds the peak");
            Assert.That(s.At(80), Is.EqualTo(1e-3), "decay starts after step 80");
            Assert.That(s.At(85), Is.EqualTo(1e-3 * (1 - Math.Sqrt(0.25))).Within(1e-12));
            Assert.That(s.At(100), Is.EqualTo(0).Within(1e-15));
        });
    }

    [Test]
    public void Constant_AfterWarmup_StaysAtPeak()
    {
        var s = new ConstantSchedule(2e-3, WarmupSteps: 4, TotalSteps: 50);
        Assert.That(s.At(2), Is.EqualTo(1e-3).Within(1e-12));
        Assert.That(s.At(50), Is.EqualTo(2e-3));
    }
}
