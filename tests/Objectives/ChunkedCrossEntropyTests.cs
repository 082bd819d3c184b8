using NUnit.Framework;
using Training.Shared.Models;
using Training.Shared.Objectives;
using Training.Tests.Models;
using static TorchSharp.torch;

namespace Training.Tests.Objectives;

/// <summary>The chunked tied-head loss against cross_entropy on the full logits: same loss, counts and gradients.</summary>
public class ChunkedCrossEntropyTests
{
    private static Tensor Labels(long[,] values) => tensor(values);

    [TestCase(ScalarType.Float64, 1L, 1e-12)]
    [TestCase(ScalarType.Float64, 4L, 1e-12)]
    [TestCase(ScalarType.Float32, 3L, 1e-5)]
    [TestCase(ScalarType.Float32, 100L, 1e-5)]
    public void Compute_AnyChunking_EqualsFullLogitsLossAndGradients(ScalarType dtype, long chunkRows, double tolerance)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var hidden = randn(new long[] { 2, 5, 8 }, dtype: dtype).requires_grad_();
        var weight = randn(new long[] { 13, 8 }, dtype: dtype).requires_grad_();
        // Ignored targets in both rows, one of them the last position of a chunk.
        var labels = Labels(new long[,] { { 3, ObjectiveMath.IgnoreIndex, 12, 0, 7 }, { 5, 5, 1, ObjectiveMath.IgnoreIndex, 9 } });

        var (expected, expectedCorrect, expectedCounted) = ObjectiveMath.CrossEntropy(nn.functional.linear(hidden, weight), labels);
        // Scaled, as gradient accumulation does: the surrogate must pass any factor through.
        expected.mul(2.5).backward();
        var (expectedHidden, expectedWeight) = (hidden.grad!.clone(), weight.grad!.clone());
        hidden.grad!.zero_();
        weight.grad!.zero_();

        var (loss, correct, counted) = ChunkedCrossEntropy.Compute(hidden, weight, labels, chunkRows);
        loss.mul(2.5).backward();

        Assert.That((correct, counted), Is.EqualTo((expectedCorrect, expectedCounted)));
        Assert.That(counted, Is.EqualTo(8));
        Assert.That(loss.to(ScalarType.Float64).item<double>(), Is.EqualTo(expected.to(ScalarType.Float64).item<double>()).Within(tolerance * 10));
        Assert.That(hidden.grad!.allclose(expectedHidden, rtol: tolerance, atol: tolerance), Is.True, "gradient of the hidden states");
        Assert.That(weight.grad!.allclose(expectedWeight, rtol: tolerance, atol: tolerance), Is.True, "gradient of the head weight");
    }

    [Test]
    public void Compute_TiedDecoderOnlyModel_GivesEveryParameterTheGradientOfTheFullLogitsPath()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var model = new DecoderOnlyModel(TinyConfigs.DecoderOnly());
        model.eval(); // no dropout: both passes see the same function
        var tokens = randint(3, 37, new long[] { 3, 7 }, dtype: ScalarType.Int64);
        var labels = randint(0, 37, new long[] { 3, 7 }, dtype: ScalarType.Int64);
        Assert.That(model.HeadIsTied, Is.True);

        ObjectiveMath.CrossEntropy(model.forward(tokens), labels).Loss.backward();
        var expected = model.parameters().Select(p => p.grad!.clone()).ToList();
        model.zero_grad();

        ChunkedCrossEntropy.Compute(model.Hidden(tokens), model.EmbeddingWeight, labels, chunkRows: 4).Loss.backward();
        var actual = model.parameters().Select(p => p.grad!).ToList();

        // The embedding's gradient sums the lookup's part and the head's part, as with the full logits.
        Assert.That(actual, Has.Count.EqualTo(expected.Count));
        for (var i = 0; i < actual.Count; i++)
            Assert.That(actual[i].allclose(expected[i], rtol: 1e-4, atol: 1e-6), Is.True, $"parameter {i}");
    }

    [Test]
    public void Compute_WithoutGrad_GivesTheLossAndNoGraph()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var hidden = randn(4, 6);
        var weight = randn(9, 6);
        var labels = tensor(new long[] { 1, 8, 0, ObjectiveMath.IgnoreIndex });
        var expected = ObjectiveMath.CrossEntropy(nn.functional.linear(hidden, weight), labels).Loss.item<float>();

        using var _ = no_grad();
        var (loss, _, counted) = ChunkedCrossEntropy.Compute(hidden, weight, labels, chunkRows: 3);

        Assert.That(loss.requires_grad, Is.False);
        Assert.That(counted, Is.EqualTo(3));
        Assert.That(loss.item<float>(), Is.EqualTo(expected).Within(1e-5));
    }

    [Test]
    public void Applies_Cl100kDecoderButNotTheByteLevelQuickstart()
    {
        Assert.That(ChunkedCrossEntropy.Applies(8 * 64, 100_352), Is.True);
        Assert.That(ChunkedCrossEntropy.Applies(16 * 157, 359), Is.False);
    }

    [Test]
    public void CausalLm_ChunkedAndFullPaths_GiveTheSameLossAndCounts()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var model = new DecoderOnlyModel(TinyConfigs.DecoderOnly());
        model.eval();
        var windows = Enumerable.Range(0, 3).Select(r => Enumerable.Range(0, 17).Select(t => (r * 7 + t * 5) % 37).ToArray()).ToList();
        var objective = new CausalLmObjective(16);
        var previous = ChunkedCrossEntropy.MinLogitElements;
        try
        {
            ChunkedCrossEntropy.MinLogitElements = 1;
            var chunked = objective.Compute(model, windows, [0, 1, 2], CPU);
            ChunkedCrossEntropy.MinLogitElements = long.MaxValue;
            var full = objective.Compute(model, windows, [0, 1, 2], CPU);
            Assert.That(chunked.Loss.item<float>(), Is.EqualTo(full.Loss.item<float>()).Within(1e-5));
            Assert.That((chunked.CorrectTokens, chunked.TargetTokens), Is.EqualTo((full.CorrectTokens, full.TargetTokens)));
        }
        finally
        {
            ChunkedCrossEntropy.MinLogitElements = previous;
        }
    }
}
