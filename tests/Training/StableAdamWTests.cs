using NUnit.Framework;
using TorchSharp;
using TorchSharp.Modules;
using Training.Shared.Spec;
using Training.Shared.Training;
using AdamW = Training.Shared.Training.AdamW;
using static TorchSharp.torch;

namespace Training.Tests.Training;

/// <summary>StableAdamW against a by-hand computation of Wortsman et al.'s update clipping.</summary>
public class StableAdamWTests
{
    private const double Beta1 = 0.9, Beta2 = 0.98, Eps = 1e-6, Decay = 0.1, Lr = 0.01;

    /// <summary>One float64 matrix parameter (decays) and its optimizer.</summary>
    private static (Parameter Weight, StableAdamW Optimizer) Setup(double[] initial)
    {
        var weight = new Parameter(tensor(initial, ScalarType.Float64).reshape(1, initial.Length));
        return (weight, new StableAdamW([("w", weight)], Beta1, Beta2, Eps, Decay));
    }

    /// <summary>The algorithm written out per element in doubles.</summary>
    private static double[] Reference(double[] theta, double[][] gradients)
    {
        var p = (double[])theta.Clone();
        var m = new double[p.Length];
        var v = new double[p.Length];
        for (var t = 1; t <= gradients.Length; t++)
        {
            var g = gradients[t - 1];
            for (var i = 0; i < p.Length; i++)
            {
                m[i] = Beta1 * m[i] + (1 - Beta1) * g[i];
                v[i] = Beta2 * v[i] + (1 - Beta2) * g[i] * g[i];
            }
            var c1 = 1 - Math.Pow(Beta1, t);
            var c2 = 1 - Math.Pow(Beta2, t);
            var rms = Math.Sqrt(Enumerable.Range(0, p.Length).Average(i => g[i] * g[i] / Math.Max(v[i] / c2, Eps * Eps)));
            var rate = Lr / Math.Max(1, rms);
            for (var i = 0; i < p.Length; i++)
            {
                p[i] -= rate * Decay * p[i];
                p[i] -= rate * (m[i] / c1) / (Math.Sqrt(v[i] / c2) + Eps);
            }
        }
        return p;
    }

    [Test]
    public void Step_GradientSpikeAfterQuietSteps_DividesTheRateByTheUpdateRms()
    {
        using var scope = NewDisposeScope();
        double[] theta = [0.5, -0.2, 1.0];
        double[][] gradients = [[0.01, -0.02, 0.01], [0.02, -0.01, 0.01], [0.01, -0.01, 0.02], [3.0, 2.0, -4.0]];
        var (weight, optimizer) = Setup(theta);

        foreach (var g in gradients)
        {
            weight.grad = tensor(g, ScalarType.Float64).reshape(1, 3);
            optimizer.Step(Lr);
        }

        var expected = Reference(theta, gradients);
        Assert.That(weight.data<double>().ToArray(), Is.EqualTo(expected).Within(1e-12));
        Assert.That(optimizer.LastRateDivisors["w"], Is.GreaterThan(1.9), "the spike is clipped (at most sqrt(c2 / (1 - beta2)) ~ 1.97 this early)");
        Assert.That(optimizer.Steps, Is.EqualTo(4));
    }

    [Test]
    public void Step_FirstStep_IsNotClippedAndMatchesAdamW()
    {
        using var scope = NewDisposeScope();
        double[] theta = [0.3, 0.4];
        var (stableWeight, stable) = Setup(theta);
        var adamWeight = new Parameter(tensor(theta, ScalarType.Float64).reshape(1, 2));
        using var adam = new AdamW([("w", adamWeight)], Beta1, Beta2, Eps, Decay);

        stableWeight.grad = tensor(new[] { 5.0, -7.0 }, ScalarType.Float64).reshape(1, 2);
        adamWeight.grad = stableWeight.grad.clone();
        stable.Step(Lr);
        adam.Step(Lr);

        // At step 1 the bias-corrected second moment is g^2, so RMS = 1: nothing to clip.
        Assert.That(stable.LastRateDivisors["w"], Is.EqualTo(1.0).Within(1e-6));
        Assert.That(stableWeight.data<double>().ToArray(), Is.EqualTo(adamWeight.data<double>().ToArray()).Within(1e-9));
    }

    [Test]
    public void Restore_Snapshot_ContinuesExactlyLikeTheOriginal()
    {
        using var scope = NewDisposeScope();
        double[] theta = [0.1, 0.2, 0.3];
        var (weight, optimizer) = Setup(theta);
        weight.grad = tensor(new[] { 0.1, 0.5, -0.3 }, ScalarType.Float64).reshape(1, 3);
        optimizer.Step(Lr);
        var snapshot = optimizer.Snapshot();
        var (copy, restored) = Setup(weight.data<double>().ToArray());
        restored.Restore(snapshot, "test");

        foreach (var p in new[] { weight, copy }) p.grad = tensor(new[] { 2.0, -1.0, 0.5 }, ScalarType.Float64).reshape(1, 3);
        optimizer.Step(Lr);
        restored.Step(Lr);

        Assert.That(copy.data<double>().ToArray(), Is.EqualTo(weight.data<double>().ToArray()));
        Assert.That(restored.Steps, Is.EqualTo(2));
    }

    [Test]
    public void Create_EachKind_GivesThatOptimizer()
    {
        using var scope = NewDisposeScope();
        var parameter = new Parameter(zeros(2, 2));
        var spec = new OptimizerSpec(OptimizerKind.StableAdamW, 1e-3, 0.9, 0.98, 1e-6, 0.01, 0);

        using var stable = OptimizerFactory.Create(spec, [("p", parameter)]);
        using var adam = OptimizerFactory.Create(spec with { Kind = OptimizerKind.AdamW }, [("p", parameter)]);

        Assert.That(stable, Is.InstanceOf<StableAdamW>());
        Assert.That(adam, Is.InstanceOf<AdamW>());
    }
}
