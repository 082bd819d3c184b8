using TorchSharp;

namespace Training.Shared.Collectives;

/// <summary>Element types a gradient all-reduce carries. Buffers hold them little-endian.</summary>
public enum ElementType
{
    Float32,
    BFloat16,
}

/// <summary>Where a rank's ring listener accepts the connection from its ring predecessor.</summary>
public sealed record RingEndpoint(string Host, int Port)
{
    public override string ToString() => $"{Host}:{Port}";
}

/// <summary>
/// The ranks of one trial generation, joined for collectives. Gradients travel through a group, never through
/// Akka messages. Calls are collective: every rank makes the same calls, in the same order, with buffers of the
/// same length and type. One call at a time per group.
/// </summary>
public interface ICollectiveGroup : IDisposable
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>
    /// Sums <paramref name="buffer"/> (<paramref name="type"/> elements, little-endian) across all ranks in place;
    /// every rank ends with the same sum, bit for bit. BFloat16 is accumulated in float32 and rounded once at the
    /// end (round-to-nearest-even).
    /// </summary>
    void AllReduceSum(Span<byte> buffer, ElementType type);

    /// <summary>
    /// Convenience for a contiguous float32 or bfloat16 TorchSharp tensor, summed in place. CPU tensors are reduced
    /// in their own memory; CUDA tensors in place on the device with NCCL (through host memory with the TCP ring).
    /// </summary>
    void AllReduceSum(torch.Tensor tensor);

    /// <summary>
    /// Unblocks any rank waiting in a collective of this group with <see cref="CollectiveAbortedException"/>;
    /// the group is unusable afterwards. Idempotent; safe to call from another thread.
    /// </summary>
    void Abort(string reason);
}

public static class ElementTypes
{
    public static int ByteSize(this ElementType type) => type switch
    {
        ElementType.Float32 => 4,
        ElementType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "element types are Float32 and BFloat16"),
    };

    /// <summary>The lower-case name used in messages ("float32", "bfloat16").</summary>
    public static string Describe(this ElementType type) => type switch
    {
        ElementType.Float32 => "float32",
        ElementType.BFloat16 => "bfloat16",
        _ => type.ToString(),
    };
}
