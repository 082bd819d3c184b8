using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Rotary position embedding, rotate-half convention: dimension i of the first half pairs with dimension
/// i + headDim/2, and the pair is rotated by angle position * theta^(-2i/headDim).
/// Has no parameters; positions start at an offset so that a token decoded against a KV cache gets the
/// same rotation it would have in a full forward pass.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly double[] inverseFrequencies; // [headDim/2]

    public RotaryEmbedding(int headDim, double theta)
    {
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ArgumentException($"RotaryEmbedding head dimension {headDim} must be positive and even.", nameof(headDim));
        if (theta <= 0)
            throw new ArgumentException($"RotaryEmbedding theta {theta} must be positive.", nameof(theta));
        HeadDim = headDim;
        inverseFrequencies = Enumerable.Range(0, headDim / 2)
            .Select(i => 1.0 / Math.Pow(theta, 2.0 * i / headDim))
            .ToArray();
    }

    public int HeadDim { get; }

    /// <summary>Rotates x by the angles of positions positionOffset .. positionOffset + T - 1.</summary>
    /// <param name="x">[B, H, T, headDim]</param>
    public Tensor Apply(Tensor x, long positionOffset)
    {
        if (x.shape[^1] != HeadDim)
            throw new ArgumentException($"RotaryEmbedding expects last dimension {HeadDim}, got shape [{string.Join(", ", x.shape)}].", nameof(x));
        var length = x.shape[^2];
        // Angles in float64 then cast: positions times frequencies stay exact enough for long contexts.
        var positions = arange(positionOffset, positionOffset + length, dtype: ScalarType.Float64, device: x.device);
        var frequencies = tensor(inverseFrequencies, device: x.device);
        var angles = outer(positions, frequencies);                 // [T, headDim/2]
        var doubled = cat([angles, angles], dim: -1);               // [T, headDim]
        var cos = doubled.cos().to(x.dtype);
        var sin = doubled.sin().to(x.dtype);
        return x * cos + RotateHalf(x) * sin;
    }

    /// <summary>(x1, x2) -> (-x2, x1) over the two halves of the last dimension.</summary>
    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        var first = x.narrow(-1, 0, half);
        var second = x.narrow(-1, half, half);
        return cat([second.neg(), first], dim: -1);
    }
}
