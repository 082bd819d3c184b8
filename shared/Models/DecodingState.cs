using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Everything a model keeps between incremental decoding steps: one preallocated self-attention
/// <see cref="KeyValueCache"/> per layer, which decoded positions are real tokens (for key-padding masks),
/// and for the encoder-decoder the cross-attention keys/values computed once from the encoder output.
/// Create it with the model's StartDecoding; dispose it (or its dispose scope) when generation ends.
/// </summary>
public sealed class DecodingState : IDisposable
{
    private readonly KeyValueCache[] selfAttention;
    private readonly Tensor isToken; // [B, capacity] bool

    internal DecodingState(long batchSize, int capacity, KeyValueCache[] selfAttention, Device device,
        IReadOnlyList<(Tensor Keys, Tensor Values)>? crossKeysValues = null, Tensor? memoryIsToken = null)
    {
        BatchSize = batchSize;
        Capacity = capacity;
        this.selfAttention = selfAttention;
        isToken = zeros([batchSize, capacity], dtype: ScalarType.Bool, device: device);
        CrossKeysValues = crossKeysValues;
        MemoryIsToken = memoryIsToken;
    }

    public long BatchSize { get; }

    /// <summary>Most positions this state can hold (prompt plus new tokens).</summary>
    public int Capacity { get; }

    /// <summary>Positions decoded so far; the next token fed gets this position.</summary>
    public int Length { get; private set; }

    internal IReadOnlyList<(Tensor Keys, Tensor Values)>? CrossKeysValues { get; }

    /// <summary>
    /// Bytes of key/value tensors held for decoding: every self-attention cache at full capacity, plus the
    /// cross-attention keys/values computed once from the encoder output (encoder-decoder only).
    /// </summary>
    public long CacheBytes =>
        selfAttention.Sum(cache => cache.Bytes)
        + (CrossKeysValues?.Sum(kv => kv.Keys.NumberOfElements * kv.Keys.ElementSize + kv.Values.NumberOfElements * kv.Values.ElementSize) ?? 0);

    /// <summary>[B, S] bool: real encoder positions (encoder-decoder only).</summary>
    internal Tensor? MemoryIsToken { get; }

    internal KeyValueCache Layer(int index) => selfAttention[index];

    /// <summary>
    /// Records which of the new tokens are real and returns the key-padding flags of all positions
    /// including them, [B, Length + T]. Call <see cref="Advance"/> after the layers have run.
    /// </summary>
    internal Tensor Record(Tensor newTokens, long padId)
    {
        var count = newTokens.shape[1];
        if (newTokens.dim() != 2 || newTokens.shape[0] != BatchSize)
            throw new ArgumentException(
                $"Decoding step tokens must be [{BatchSize}, T], got [{string.Join(", ", newTokens.shape)}].", nameof(newTokens));
        if (Length + count > Capacity)
            throw new InvalidOperationException(
                $"DecodingState is full: {Length} positions decoded, {count} more do not fit in capacity {Capacity}.");
        isToken.narrow(1, Length, count).copy_(AttentionMask.IsToken(newTokens, padId));
        return isToken.narrow(1, 0, Length + count);
    }

    internal void Advance(long count) => Length += checked((int)count);

    public void Dispose()
    {
        foreach (var cache in selfAttention)
            cache.Dispose();
        isToken.Dispose();
        if (CrossKeysValues is not null)
        {
            foreach (var (keys, values) in CrossKeysValues)
            {
                keys.Dispose();
                values.Dispose();
            }
        }
        MemoryIsToken?.Dispose();
    }
}
