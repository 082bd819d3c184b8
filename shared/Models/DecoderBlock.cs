using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Pre-norm decoder layer of the encoder-decoder: causal self-attention (RoPE), then cross-attention over the
/// final-normed encoder output (keys/values projected by this layer, no RoPE), then MLP; each with a residual.
/// </summary>
public sealed class DecoderBlock : nn.Module
{
    private readonly RmsNorm selfAttentionNorm;
    private readonly GroupedQueryAttention selfAttention;
    private readonly RmsNorm crossAttentionNorm;
    private readonly GroupedQueryAttention crossAttention;
    private readonly RmsNorm mlpNorm;
    private readonly FeedForward mlp;

    public DecoderBlock(string name, TransformerConfig config) : base(name)
    {
        selfAttentionNorm = new RmsNorm("self_attention_norm", config.DModel, config.NormEps);
        selfAttention = new GroupedQueryAttention("self_attention", config, useRotary: true);
        crossAttentionNorm = new RmsNorm("cross_attention_norm", config.DModel, config.NormEps);
        crossAttention = new GroupedQueryAttention("cross_attention", config, useRotary: false);
        mlpNorm = new RmsNorm("mlp_norm", config.DModel, config.NormEps);
        mlp = new FeedForward("mlp", config);
        RegisterComponents();
    }

    /// <summary>This layer's self-attention (for probes).</summary>
    public GroupedQueryAttention SelfAttention => selfAttention;

    /// <summary>This layer's cross-attention (for probes).</summary>
    public GroupedQueryAttention CrossAttention => crossAttention;

    /// <summary>Projects encoder memory to this layer's cross-attention keys/values ([B, kvH, S, hd] each).</summary>
    public (Tensor Keys, Tensor Values) CrossKeysValues(Tensor memory) => crossAttention.ProjectKeysValues(memory);

    /// <summary>Full-sequence pass (training, uncached decoding).</summary>
    /// <param name="x">[B, T, d]</param>
    /// <param name="memory">[B, S, d] final-normed encoder output</param>
    /// <param name="selfMask">additive [B, 1, T, T], causal</param>
    /// <param name="crossMask">additive [B, 1, T, S]</param>
    /// <param name="angles">RoPE tables of positions 0 .. T-1</param>
    public Tensor forward(Tensor x, Tensor memory, Tensor selfMask, Tensor crossMask, RotaryAngles angles)
    {
        var (keys, values) = CrossKeysValues(memory);
        return Step(x, selfMask, angles, cache: null, keys, values, crossMask);
    }

    /// <summary>Pass over new positions angles.Offset.. with cached self-attention and precomputed cross keys/values.</summary>
    /// <param name="selfMask">additive [B, 1, T, angles.Offset + T] with a cache</param>
    public Tensor Step(Tensor x, Tensor selfMask, RotaryAngles angles, KeyValueCache? cache,
        Tensor crossKeys, Tensor crossValues, Tensor crossMask)
    {
        x = x + selfAttention.SelfAttend(selfAttentionNorm.forward(x), selfMask, angles, cache);
        x = x + crossAttention.CrossAttend(crossAttentionNorm.forward(x), crossKeys, crossValues, crossMask);
        return x + mlp.forward(mlpNorm.forward(x));
    }
}
