using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>Pre-norm encoder layer: x += SelfAttention(norm(x)) (bidirectional, RoPE); x += MLP(norm(x)).</summary>
public sealed class EncoderBlock : nn.Module
{
    private readonly RmsNorm attentionNorm;
    private readonly GroupedQueryAttention selfAttention;
    private readonly RmsNorm mlpNorm;
    private readonly FeedForward mlp;

    public EncoderBlock(string name, TransformerConfig config) : base(name)
    {
        attentionNorm = new RmsNorm("attention_norm", config.DModel, config.NormEps);
        selfAttention = new GroupedQueryAttention("self_attention", config, useRotary: true);
        mlpNorm = new RmsNorm("mlp_norm", config.DModel, config.NormEps);
        mlp = new FeedForward("mlp", config);
        RegisterComponents();
    }

    /// <summary>This layer's self-attention (for probes).</summary>
    public GroupedQueryAttention SelfAttention => selfAttention;

    /// <param name="x">[B, S, d]</param>
    /// <param name="mask">additive [B, 1, S, S]</param>
    /// <param name="angles">RoPE tables of positions 0 .. S-1</param>
    public Tensor forward(Tensor x, Tensor mask, RotaryAngles angles)
    {
        x = x + selfAttention.SelfAttend(attentionNorm.forward(x), mask, angles);
        return x + mlp.forward(mlpNorm.forward(x));
    }
}
