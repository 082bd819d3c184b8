using TorchSharp;

namespace Training.Shared.Collectives;

/// <summary>World size 1: every all-reduce is the identity, and no sockets are opened.</summary>
internal sealed class SingleRankGroup : ICollectiveGroup
{
    private volatile string? _abortReason;

    public int Rank => 0;
    public int WorldSize => 1;

    public void AllReduceSum(Span<byte> buffer, ElementType type)
    {
        ThrowIfAborted();
        if (buffer.Length % type.ByteSize() != 0)
            throw new ArgumentException($"rank 0/1: all-reduce buffer of {buffer.Length} bytes is not a whole number of {type.Describe()} elements", nameof(buffer));
    }

    public void AllReduceSum(torch.Tensor tensor)
    {
        ThrowIfAborted();
        TensorBuffers.ElementTypeOf(tensor);
    }

    public void Abort(string reason) => _abortReason ??= reason;

    public void Dispose() => Abort("the group was disposed");

    private void ThrowIfAborted()
    {
        if (_abortReason is { } reason) throw new CollectiveAbortedException($"rank 0/1: the collective group was aborted: {reason}");
    }
}
