using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>The reference initialisation: N(0, 0.02) linear, convolution and embedding weights, zero biases, norm
/// weights 1 (LayerNorm starts at weight 1, bias 0 by construction).</summary>
public static class WeightInitialization
{
    public const double StandardDeviation = 0.02;

    public static void Apply(nn.Module model)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    nn.init.normal_(linear.weight, 0, StandardDeviation);
                    if (linear.bias is { } bias)
                        nn.init.zeros_(bias);
                    break;
                case Conv1d convolution:
                    nn.init.normal_(convolution.weight, 0, StandardDeviation);
                    if (convolution.bias is { } convolutionBias)
                        nn.init.zeros_(convolutionBias);
                    break;
                case Embedding embedding:
                    nn.init.normal_(embedding.weight, 0, StandardDeviation);
                    break;
                case RmsNorm norm:
                    nn.init.ones_(norm.Weight);
                    break;
            }
        }
    }
}
