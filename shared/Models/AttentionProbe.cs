using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The query, key and value vectors one attention module used in the last forward pass, as [B, L, heads * head_dim]
/// (key/value heads repeated to the query heads, rotary positions applied where the module applies them): what
/// MiniEnD's attention relations are computed from. Set on a module for one pass (<see cref="EncoderDecoderModel.ForwardCapturing"/>).
/// </summary>
public sealed class AttentionProbe
{
    /// <summary>[B, Lq, D]</summary>
    public Tensor? Queries { get; private set; }

    /// <summary>[B, Lk, D]</summary>
    public Tensor? Keys { get; private set; }

    /// <summary>[B, Lk, D]</summary>
    public Tensor? Values { get; private set; }

    /// <param name="q">[B, H, Lq, hd]</param>
    /// <param name="k">[B, kvH, Lk, hd]</param>
    /// <param name="v">[B, kvH, Lk, hd]</param>
    internal void Record(Tensor q, Tensor k, Tensor v)
    {
        var groups = q.shape[1] / k.shape[1];
        Queries = Merge(q);
        Keys = Merge(groups > 1 ? k.repeat_interleave(groups, dim: 1) : k);
        Values = Merge(groups > 1 ? v.repeat_interleave(groups, dim: 1) : v);
    }

    /// <summary>[B, n, L, hd] -> [B, L, n * hd]</summary>
    private static Tensor Merge(Tensor heads) =>
        heads.transpose(1, 2).reshape(heads.shape[0], heads.shape[2], heads.shape[1] * heads.shape[3]);
}
