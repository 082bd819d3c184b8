using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// A layer of the Ettin recipe (ModernBERT): pre-norm LayerNorm without bias, multi-head attention with RoPE and
/// no biases, GeGLU MLP without biases. x += Attn(LN(x)); x += MLP(LN(x)). Whether the layer attends globally or
/// through the sliding window, and with which RoPE base, is the caller's choice of mask and angles.
/// </summary>
public sealed class EttinBlock : nn.Module
{
    private readonly LayerNorm attentionNorm;
    private readonly GroupedQueryAttention attention;
    private readonly LayerNorm mlpNorm;
    private readonly FeedForward mlp;

    public EttinBlock(string name, TransformerConfig config) : base(name)
    {
        attentionNorm = nn.LayerNorm(config.DModel, config.NormEps, bias: false);
        attention = new GroupedQueryAttention("attention", config, useRotary: true, bias: false);
        mlpNorm = nn.LayerNorm(config.DModel, config.NormEps, bias: false);
        mlp = new FeedForward("mlp", config, bias: false);
        RegisterComponents();
    }

    /// <param name="x">[B, T, d]</param>
    /// <param name="mask">additive [B, 1, T, T]: global (full or causal) or sliding-window</param>
    /// <param name="angles">RoPE tables of positions 0 .. T-1 at this layer's base</param>
    public Tensor forward(Tensor x, Tensor mask, RotaryAngles angles)
    {
        x = x + attention.SelfAttend(attentionNorm.forward(x), mask, angles);
        return x + mlp.forward(mlpNorm.forward(x));
    }
}

/// <summary>
/// The prediction head both Ettin models put before the tied decoder: dense d -> d (no bias), GELU, LayerNorm without bias.
/// </summary>
public sealed class PredictionHead : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly LayerNorm norm;

    public PredictionHead(string name, TransformerConfig config) : base(name)
    {
        dense = nn.Linear(config.DModel, config.DModel, hasBias: false);
        norm = nn.LayerNorm(config.DModel, config.NormEps, bias: false);
        RegisterComponents();
    }

    /// <param name="x">[B, T, d]</param>
    public override Tensor forward(Tensor x) => norm.forward(nn.functional.gelu(dense.forward(x)));
}
