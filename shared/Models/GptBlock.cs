using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The GPT block of the decoder-variants paper: causal multi-head attention and a 4x GELU MLP, LayerNorm with
/// bias, biases on every projection, dropout on attention probabilities and on both sub-layer outputs.
/// Pre-LN: x += Attn(LN(x)); x += MLP(LN(x)). Post-LN: x = LN(x + Attn(x)); x = LN(x + MLP(x)).
/// Built at the width of its stage (compressed variants halve it), heads keep their number.
/// </summary>
public sealed class GptBlock : nn.Module
{
    private readonly LayerNorm attentionNorm;
    private readonly GroupedQueryAttention attention;
    private readonly Dropout attentionDropout;
    private readonly LayerNorm mlpNorm;
    private readonly FeedForward mlp;
    private readonly NormPosition placement;

    /// <param name="config">the stage's config (<see cref="TransformerConfig.AtWidth"/>): DModel is this block's width</param>
    public GptBlock(string name, TransformerConfig config) : base(name)
    {
        placement = config.NormPosition;
        attentionNorm = nn.LayerNorm(config.DModel, config.NormEps);
        attention = new GroupedQueryAttention("attention", config, useRotary: false);
        attentionDropout = nn.Dropout(config.Dropout);
        mlpNorm = nn.LayerNorm(config.DModel, config.NormEps);
        mlp = new FeedForward("mlp", config); // dropout on its output is the residual dropout
        RegisterComponents();
    }

    /// <param name="x">[B, T, width]</param>
    /// <param name="mask">additive [B, 1, T, T], causal</param>
    public Tensor forward(Tensor x, Tensor mask)
    {
        if (placement == NormPosition.Pre)
        {
            x = x + attentionDropout.forward(attention.SelfAttend(attentionNorm.forward(x), mask, angles: null));
            return x + mlp.forward(mlpNorm.forward(x));
        }
        x = attentionNorm.forward(x + attentionDropout.forward(attention.SelfAttend(x, mask, angles: null)));
        return mlpNorm.forward(x + mlp.forward(x));
    }
}
