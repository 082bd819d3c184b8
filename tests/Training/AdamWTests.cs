using NUnit.Framework;
using TorchSharp;
using Training.Shared.Training;
using static TorchSharp.torch;

namespace Training.Tests.Training;

public class AdamWTests
{
    [Test]
    public void Step_OnMatrices_MatchesTorchAdamW()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var ours = nn.Linear(6, 4, hasBias: false);
        var reference = nn.Linear(6, 4, hasBias: false);
        using (no_grad()) reference.weight!.copy_(ours.weight!);
        var optimizer = new AdamW(ours.named_parameters(), 0.9, 0.98, 1e-8, weightDecay: 0.1);
        var torchOptimizer = optim.AdamW(reference.parameters(), lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0.1);
        for (var step = 0; step < 20; step++)
        {
            var input = randn(8, 6);
            ours.forward(input).pow(2).mean().backward();
            reference.forward(input).pow(2).mean().backward();
            optimizer.Step(1e-2);
            torchOptimizer.step();
            optimizer.ZeroGrad();
            torchOptimizer.zero_grad();
        }
        Assert.That(ours.weight!.allclose(reference.weight!, rtol: 1e-5, atol: 1e-6), Is.True);
        optimizer.Dispose();
    }

    [Test]
    public void ShouldDecay_MatricesYes_BiasesAndNormWeightsNo()
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(3, 2);
        var norm = nn.LayerNorm(3);
        Assert.Multiple(() =>
        {
            Assert.That(AdamW.ShouldDecay("proj.weight", linear.weight!), Is.True);
            Assert.That(AdamW.ShouldDecay("proj.bias", linear.bias!), Is.False);
            Assert.That(AdamW.ShouldDecay("norm.weight", norm.weight!), Is.False);
        });
    }

    [Test]
    public void SnapshotThenRestore_ContinuesExactlyLikeUninterrupted()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var a = nn.Linear(4, 4);
        var b = nn.Linear(4, 4);
        using (no_grad())
        {
            b.weight!.copy_(a.weight!);
            b.bias!.copy_(a.bias!);
        }
        var optA = new AdamW(a.named_parameters(), 0.9, 0.99, 1e-8, 0.01);
        var inputs = Enumerable.Range(0, 6).Select(_ => randn(5, 4)).ToList();
        void Step(nn.Module<Tensor, Tensor> m, AdamW o, Tensor x)
        {
            m.forward(x).sum().backward();
            o.Step(1e-2);
            o.ZeroGrad();
        }
        for (var i = 0; i < 3; i++) Step(a, optA, inputs[i]);
        var saved = optA.Snapshot();
        using (no_grad())
        {
            b.weight!.copy_(a.weight!);
            b.bias!.copy_(a.bias!);
        }
        var optB = new AdamW(b.named_parameters(), 0.9, 0.99, 1e-8, 0.01);
        optB.Restore(saved, "snapshot");
        Assert.That(optB.Steps, Is.EqualTo(3));
        for (var i = 3; i < 6; i++)
        {
            Step(a, optA, inputs[i]);
            Step(b, optB, inputs[i]);
        }
        Assert.That(b.weight!.eq(a.weight!).all().item<bool>(), Is.True);
        optA.Dispose();
        optB.Dispose();
    }
}
