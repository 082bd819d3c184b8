using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Models;

/// <summary>
/// Root-mean-square layer norm with a learned weight and no bias: y = x / sqrt(mean(x^2) + eps) * weight.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(string name, int dim, double eps) : base(name)
    {
        this.eps = eps;
        weight = new Parameter(ones(dim));
        RegisterComponents();
    }

    public Parameter Weight => weight;

    /// <param name="input">[..., dim]</param>
    public override Tensor forward(Tensor input)
    {
        // Statistics in float32 at least, so that half-precision activations do not lose the small eps.
        var lowPrecision = input.dtype is ScalarType.Float16 or ScalarType.BFloat16;
        var work = lowPrecision ? input.to(ScalarType.Float32) : input;
        var normalized = work * work.square().mean([-1L], keepdim: true).add_(eps).rsqrt_();
        return (lowPrecision ? normalized.to(input.dtype) : normalized) * weight;
    }
}
