using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Keys and values of one self-attention layer for incremental decoding, allocated once for the whole
/// generation so that a decoding step writes in place and allocates no growing tensors.
/// Keys are stored after RoPE, so cached positions are never rotated again.
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    private readonly Tensor keys;   // [B, kvHeads, capacity, headDim]
    private readonly Tensor values; // [B, kvHeads, capacity, headDim]

    public KeyValueCache(long batch, int kvHeads, int capacity, int headDim, Device device, ScalarType dtype)
    {
        if (capacity <= 0)
            throw new ArgumentException($"KeyValueCache capacity {capacity} must be positive.", nameof(capacity));
        Capacity = capacity;
        keys = zeros([batch, kvHeads, capacity, headDim], dtype: dtype, device: device);
        values = zeros([batch, kvHeads, capacity, headDim], dtype: dtype, device: device);
    }

    public int Capacity { get; }

    /// <summary>Bytes held by the preallocated key and value tensors.</summary>
    public long Bytes => keys.NumberOfElements * keys.ElementSize + values.NumberOfElements * values.ElementSize;

    /// <summary>
    /// Stores keys/values of new positions offset .. offset+T-1 and returns views of positions 0 .. offset+T-1.
    /// </summary>
    /// <param name="newKeys">[B, kvHeads, T, headDim]</param>
    public (Tensor Keys, Tensor Values) Write(Tensor newKeys, Tensor newValues, long offset)
    {
        var length = newKeys.shape[2];
        if (offset < 0 || offset + length > Capacity)
            throw new InvalidOperationException(
                $"KeyValueCache overflow: writing positions {offset}..{offset + length - 1} into a cache of capacity {Capacity}.");
        keys.narrow(2, offset, length).copy_(newKeys);
        values.narrow(2, offset, length).copy_(newValues);
        return (keys.narrow(2, 0, offset + length), values.narrow(2, 0, offset + length));
    }

    public void Dispose()
    {
        keys.Dispose();
        values.Dispose();
    }
}
