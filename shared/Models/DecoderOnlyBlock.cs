using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Layer of the decoder-only twin: the decoder block without cross-attention.
/// x += CausalSelfAttention(norm(x)) (RoPE, optional KV cache); x += MLP(norm(x)).
/// </summary>
public sealed class DecoderOnlyBlock : nn.Module
{
    private readonly RmsNorm selfAttentionNorm;
    private readonly GroupedQueryAttention selfAttention;
    private readonly RmsNorm mlpNorm;
    private readonly FeedForward mlp;

    public DecoderOnlyBlock(string name, TransformerConfig config) : base(name)
    {
        selfAttentionNorm = new RmsNorm("self_attention_norm", config.DModel, config.NormEps);
        selfAttention = new GroupedQueryAttention("self_attention", config, useRotary: true, bias: config.Bias);
        mlpNorm = new RmsNorm("mlp_norm", config.DModel, config.NormEps);
        mlp = new FeedForward("mlp", config, bias: config.Bias);
        RegisterComponents();
    }

    /// <param name="x">[B, T, d], positions angles.Offset .. angles.Offset+T-1</param>
    /// <param name="mask">additive [B, 1, T, Tk], causal</param>
    public Tensor forward(Tensor x, Tensor mask, RotaryAngles angles, KeyValueCache? cache = null)
    {
        x = x + selfAttention.SelfAttend(selfAttentionNorm.forward(x), mask, angles, cache);
        return x + mlp.forward(mlpNorm.forward(x));
    }
}
