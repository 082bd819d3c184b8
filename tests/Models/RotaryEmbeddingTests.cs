using NUnit.Framework;
using Training.Shared.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Training.Tests.Models;

public class RotaryEmbeddingTests
{
    private static double RotatedDot(RotaryEmbedding rope, Tensor q, Tensor k, int m, int n) =>
        (rope.Apply(q, m) * rope.Apply(k, n)).sum().item<double>();

    [Test]
    public void Apply_DotProduct_DependsOnlyOnRelativePosition()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var rope = new RotaryEmbedding(headDim: 16, theta: 10000);
        var q = randn([1, 1, 1, 16], dtype: ScalarType.Float64);
        var k = randn([1, 1, 1, 16], dtype: ScalarType.Float64);

        var reference = RotatedDot(rope, q, k, 7, 3);
        Assert.Multiple(() =>
        {
            Assert.That(RotatedDot(rope, q, k, 4, 0), Is.EqualTo(reference).Within(1e-9));
            Assert.That(RotatedDot(rope, q, k, 104, 100), Is.EqualTo(reference).Within(1e-9));
            Assert.That(RotatedDot(rope, q, k, 3, 7), Is.Not.EqualTo(reference).Within(1e-3), "m - n = -4 is another distance");
            Assert.That(RotatedDot(rope, q, k, 8, 3), Is.Not.EqualTo(reference).Within(1e-3), "m - n = 5 is another distance");
        });
    }

    [Test]
    public void Apply_PositionOffset_MatchesSliceOfFullSequence()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var rope = new RotaryEmbedding(headDim: 8, theta: 10000);
        var x = randn([2, 3, 10, 8]);
        var full = rope.Apply(x, 0);
        var tail = rope.Apply(x.narrow(2, 6, 4), positionOffset: 6);
        Assert.That(tail.allclose(full.narrow(2, 6, 4), rtol: 1e-5, atol: 1e-6), Is.True);
    }

    [Test]
    public void Apply_PositionZero_IsIdentityAndRotationPreservesNorm()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var rope = new RotaryEmbedding(headDim: 8, theta: 10000);
        var x = randn([1, 1, 5, 8], dtype: ScalarType.Float64);
        var rotated = rope.Apply(x, 0);
        Assert.That(rotated.narrow(2, 0, 1).allclose(x.narrow(2, 0, 1)), Is.True);
        Assert.That(rotated.norm(-1).allclose(x.norm(-1)), Is.True);
        Assert.That(rotated.narrow(2, 1, 4).allclose(x.narrow(2, 1, 4)), Is.False);
    }
}
