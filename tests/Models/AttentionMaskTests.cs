using NUnit.Framework;
using Training.Shared.Models;
using static TorchSharp.torch;

namespace Training.Tests.Models;

/// <summary>Masks checked position by position: 0 where a query may see a key, the dtype's minimum where not.</summary>
public class AttentionMaskTests
{
    private static bool[,] Visible(Tensor additive, int batch = 0)
    {
        var rows = (int)additive.shape[2];
        var columns = (int)additive.shape[3];
        var result = new bool[rows, columns];
        var values = additive[batch, 0].data<float>().ToArray();
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < columns; j++)
            result[i, j] = values[i * columns + j] == 0f;
        return result;
    }

    [TestCase(128, 200)]
    [TestCase(4, 11)]
    [TestCase(5, 11)]
    public void SlidingWindow_Encoder_SeesHalfTheWindowOnEitherSide(int window, int length)
    {
        using var scope = NewDisposeScope();
        var visible = Visible(AttentionMask.SlidingWindow(ones([1, length], ScalarType.Bool), window, causal: false, ScalarType.Float32));

        for (var i = 0; i < length; i++)
        for (var j = 0; j < length; j++)
            Assert.That(visible[i, j], Is.EqualTo(Math.Abs(i - j) <= window / 2), $"query {i}, key {j}");
    }

    [TestCase(64, 150)]
    [TestCase(3, 9)]
    public void SlidingWindow_Decoder_SeesItselfAndTheWindowMinusOneBefore(int window, int length)
    {
        using var scope = NewDisposeScope();
        var visible = Visible(AttentionMask.SlidingWindow(ones([1, length], ScalarType.Bool), window, causal: true, ScalarType.Float32));

        for (var i = 0; i < length; i++)
        for (var j = 0; j < length; j++)
            Assert.That(visible[i, j], Is.EqualTo(i - j >= 0 && i - j < window), $"query {i}, key {j}");
    }

    [Test]
    public void SlidingWindow_PaddingKeys_HiddenButEveryQuerySeesItself()
    {
        using var scope = NewDisposeScope();
        var isToken = tensor(new[] { true, true, false, true, false, true }).unsqueeze(0);
        var visible = Visible(AttentionMask.SlidingWindow(isToken, 4, causal: false, ScalarType.Float32));

        for (var i = 0; i < 6; i++)
        for (var j = 0; j < 6; j++)
        {
            var expected = i == j || (Math.Abs(i - j) <= 2 && j is not (2 or 4));
            Assert.That(visible[i, j], Is.EqualTo(expected), $"query {i}, key {j}");
        }
    }

    [Test]
    public void SelfAttention_Causal_SeesExactlyTheKeysUpToItself()
    {
        using var scope = NewDisposeScope();
        const int length = 7;
        var visible = Visible(AttentionMask.SelfAttention(ones([2, length], ScalarType.Bool), 0, length, causal: true, ScalarType.Float32), batch: 1);

        for (var i = 0; i < length; i++)
        for (var j = 0; j < length; j++)
            Assert.That(visible[i, j], Is.EqualTo(j <= i), $"query {i}, key {j}");
    }

    [Test]
    public void SlidingWindow_ZeroWindow_Throws()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionMask.SlidingWindow(ones([1, 3], ScalarType.Bool), 0, causal: true, ScalarType.Float32));
    }
}
