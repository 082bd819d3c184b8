using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Rotary position embedding, rotate-half convention: dimension i of the first half pairs with dimension
/// i + headDim/2, and the pair is rotated by angle position * theta^(-2i/headDim).
/// Has no parameters. A model computes the angles of the positions it processes once per pass
/// (<see cref="Angles"/>) and every RoPE attention layer applies them; positions start at an offset so a
/// token decoded against a KV cache gets the same rotation it would have in a full forward pass.
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

    /// <summary>Cosines and sines for positions positionOffset .. positionOffset + length - 1.</summary>
    public RotaryAngles Angles(long positionOffset, long length, Device device, ScalarType dtype)
    {
        // Angles in float64 then cast: position * frequency stays exact enough for long contexts.
        var positions = arange(positionOffset, positionOffset + length, dtype: ScalarType.Float64, device: device);
        var angles = outer(positions, tensor(inverseFrequencies, device: device)); // [T, headDim/2]
        var doubled = cat([angles, angles], dim: -1);                                 // [T, headDim]
        return new RotaryAngles(doubled.cos().to(dtype), doubled.sin().to(dtype), positionOffset);
    }

    /// <summary>Rotates x by the angles of positions positionOffset .. positionOffset + T - 1.</summary>
    /// <param name="x">[B, H, T, headDim]</param>
    public Tensor Apply(Tensor x, long positionOffset) =>
        Apply(x, Angles(positionOffset, x.shape[^2], x.device, x.dtype));

    /// <param name="x">[B, H, T, headDim], T equal to the length the angles were computed for</param>
    public static Tensor Apply(Tensor x, RotaryAngles angles)
    {
        if (x.shape[^1] != angles.Cos.shape[^1] || x.shape[^2] != angles.Cos.shape[0])
            throw new ArgumentException(
                $"RoPE angles [{string.Join(", ", angles.Cos.shape)}] do not fit [.., T, headDim] = [{string.Join(", ", x.shape)}].", nameof(x));
        return x * angles.Cos + RotateHalf(x) * angles.Sin;
    }

    /// <summary>(x1, x2) -> (-x2, x1) over the two halves of the last dimension.</summary>
    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        return cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], dim: -1);
    }
}

/// <summary>RoPE tables for one pass: Cos and Sin are [T, headDim]; Offset is the first position.</summary>
public sealed record RotaryAngles(Tensor Cos, Tensor Sin, long Offset);
