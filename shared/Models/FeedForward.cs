using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The block's MLP, dropout on its output; projections with bias unless built with bias: false (Ettin).
/// GeluTanh: d -> ffn -> d with GELU (tanh approximation). SwiGlu: down(silu(gate(x)) * up(x)).
/// GeGlu: down(gelu(input(x)) * gate(x)) with exact GELU (ModernBERT's fused Wi is input and gate side by side).
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly Linear input;
    private readonly Linear? gate;
    private readonly Linear output;
    private readonly Dropout dropout;
    private readonly MlpKind kind;

    public FeedForward(string name, TransformerConfig config, bool bias = true) : base(name)
    {
        kind = config.Mlp;
        input = nn.Linear(config.DModel, config.FfnDim, hasBias: bias);
        gate = kind is MlpKind.SwiGlu or MlpKind.GeGlu ? nn.Linear(config.DModel, config.FfnDim, hasBias: bias) : null;
        output = nn.Linear(config.FfnDim, config.DModel, hasBias: bias);
        dropout = nn.Dropout(config.Dropout);
        RegisterComponents();
    }

    /// <param name="x">[B, T, d]</param>
    public override Tensor forward(Tensor x)
    {
        var hidden = kind switch
        {
            MlpKind.GeluTanh => nn.functional.gelu(input.forward(x), GELU.Approximate.tanh),
            MlpKind.SwiGlu => nn.functional.silu(gate!.forward(x)) * input.forward(x),
            MlpKind.GeGlu => nn.functional.gelu(input.forward(x)) * gate!.forward(x),
            _ => throw new InvalidOperationException($"Unknown MlpKind {kind}."),
        };
        return dropout.forward(output.forward(hidden));
    }
}
