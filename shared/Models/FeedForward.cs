using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// The block's MLP, all projections with bias, dropout on its output.
/// GeluTanh: d -> ffn -> d with GELU (tanh approximation). SwiGlu: down(silu(gate(x)) * up(x)).
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly Linear input;
    private readonly Linear? gate;
    private readonly Linear output;
    private readonly Dropout dropout;
    private readonly MlpKind kind;

    public FeedForward(string name, TransformerConfig config) : base(name)
    {
        kind = config.Mlp;
        input = nn.Linear(config.DModel, config.FfnDim, hasBias: true);
        gate = kind == MlpKind.SwiGlu ? nn.Linear(config.DModel, config.FfnDim, hasBias: true) : null;
        output = nn.Linear(config.FfnDim, config.DModel, hasBias: true);
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
            _ => throw new InvalidOperationException($"Unknown MlpKind {kind}."),
        };
        return dropout.forward(output.forward(hidden));
    }
}
