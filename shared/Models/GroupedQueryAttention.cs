using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Grouped-query attention: Heads query heads share KvHeads key/value heads (query head h reads key/value
/// head h / (Heads / KvHeads)). Projections, with bias unless built with bias: false (Ettin):
/// q d -> Heads*HeadDim, k and v d -> KvHeads*HeadDim, out Heads*HeadDim -> d. Used as self-attention (optionally with RoPE and a KV cache) or as cross-attention
/// over precomputed encoder keys/values (no RoPE). Dropout applies to the attention probabilities.
/// </summary>
public sealed class GroupedQueryAttention : nn.Module
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Linear output;
    private readonly bool rotary;
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;
    private readonly double dropout;

    public GroupedQueryAttention(string name, TransformerConfig config, bool useRotary, bool bias = true) : base(name)
    {
        heads = config.Heads;
        kvHeads = config.KvHeads;
        headDim = config.HeadDim;
        dropout = config.Dropout;
        query = nn.Linear(config.DModel, config.AttentionDim, hasBias: bias);
        key = nn.Linear(config.DModel, config.KeyValueDim, hasBias: bias);
        value = nn.Linear(config.DModel, config.KeyValueDim, hasBias: bias);
        output = nn.Linear(config.AttentionDim, config.DModel, hasBias: bias);
        rotary = useRotary;
        RegisterComponents();
    }

    /// <summary>When set, each pass records the vectors it attends with (see <see cref="AttentionProbe"/>).</summary>
    public AttentionProbe? Probe { get; set; }

    /// <summary>
    /// Self-attention of x over itself (or over the cache plus itself). x holds positions
    /// angles.Offset .. angles.Offset+T-1; with a cache, its keys/values are written there first.
    /// </summary>
    /// <param name="x">[B, T, d]</param>
    /// <param name="mask">additive [B, 1, T, Tk], Tk = angles.Offset + T with a cache, T without</param>
    /// <param name="angles">RoPE tables of x's positions; null for a layer built without RoPE (then a cache is not supported)</param>
    /// <returns>[B, T, d]</returns>
    public Tensor SelfAttend(Tensor x, Tensor mask, RotaryAngles? angles, KeyValueCache? cache = null)
    {
        if (angles is null && (rotary || cache is not null))
            throw new ArgumentException($"{GetName()}: RoPE and KV caching need the positions' RotaryAngles.", nameof(angles));
        var q = SplitHeads(query.forward(x), heads);  // [B, H, T, hd]
        var k = SplitHeads(key.forward(x), kvHeads);  // [B, kvH, T, hd]
        var v = SplitHeads(value.forward(x), kvHeads);
        if (rotary)
        {
            q = RotaryEmbedding.Apply(q, angles!);
            k = RotaryEmbedding.Apply(k, angles!);
        }
        Probe?.Record(q, k, v);
        if (cache is not null)
            (k, v) = cache.Write(k, v, angles!.Offset);
        return Attend(q, k, v, mask);
    }

    /// <summary>Projects encoder memory to cross-attention keys/values once (no RoPE in cross-attention).</summary>
    /// <param name="memory">[B, S, d]</param>
    /// <returns>keys and values, each [B, kvH, S, hd]</returns>
    public (Tensor Keys, Tensor Values) ProjectKeysValues(Tensor memory) =>
        (SplitHeads(key.forward(memory), kvHeads), SplitHeads(value.forward(memory), kvHeads));

    /// <summary>Cross-attention of x over precomputed keys/values.</summary>
    /// <param name="x">[B, T, d]</param>
    /// <param name="keys">[B, kvH, S, hd]</param>
    /// <param name="mask">additive [B, 1, T, S]</param>
    /// <returns>[B, T, d]</returns>
    public Tensor CrossAttend(Tensor x, Tensor keys, Tensor values, Tensor mask)
    {
        if (rotary)
            throw new InvalidOperationException($"{GetName()} was built with RoPE; cross-attention takes no positions.");
        var q = SplitHeads(query.forward(x), heads);
        Probe?.Record(q, keys, values);
        return Attend(q, keys, values, mask);
    }

    private Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        var groups = heads / kvHeads;
        if (groups > 1)
        {
            // SDPA here has no grouped-query flag: give each query head its own copy of its key/value head.
            k = k.repeat_interleave(groups, dim: 1);
            v = v.repeat_interleave(groups, dim: 1);
        }
        var attended = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask: mask, p: training ? dropout : 0.0);   // [B, H, T, hd]
        var batch = attended.shape[0];
        var length = attended.shape[2];
        return output.forward(attended.transpose(1, 2).reshape(batch, length, heads * headDim));
    }

    /// <summary>[B, T, n*hd] -> [B, n, T, hd]</summary>
    private Tensor SplitHeads(Tensor projected, int count) =>
        projected.view(projected.shape[0], projected.shape[1], count, headDim).transpose(1, 2);
}
