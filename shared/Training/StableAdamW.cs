using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// StableAdamW (Wortsman et al. 2023, "Stable and low-precision training for large-scale vision-language models";
/// the Ettin recipe's optimizer): AdamW whose learning rate is divided, per tensor and per step, by
/// max(1, RMS_t) with RMS_t = sqrt(mean(g_t^2 / max(v_t, eps^2))), v_t the bias-corrected second moment: AdaFactor's
/// update clipping, which caps the step when a gradient is large against its own history (the loss-spike case)
/// instead of clipping the global gradient norm. Decoupled weight decay scales with the clipped rate too, and is not
/// applied to norms and biases (<see cref="AdamFamilyOptimizer.ShouldDecay"/>). The state has AdamW's layout (exp_avg, exp_avg_sq, step).
/// </summary>
public sealed class StableAdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double eps, double weightDecay)
    : AdamFamilyOptimizer(parameters, beta1, beta2, eps, weightDecay)
{
    private Dictionary<string, double> _divisors = new();

    /// <summary>Per parameter, the factor its rate was divided by in the last step (max(1, RMS_t)).</summary>
    public IReadOnlyDictionary<string, double> LastRateDivisors { get; private set; } = new Dictionary<string, double>();

    protected override void BeginStep() => _divisors = new Dictionary<string, double>();

    protected override void EndStep() => LastRateDivisors = _divisors;

    protected override void Update(Slot slot, Tensor grad, double lr, double correction1, double correction2)
    {
        var secondEstimate = slot.SecondMoment / correction2;                                   // v_t
        var rms = (grad.square() / secondEstimate.clamp_min(Eps * Eps)).mean().sqrt_();         // scalar
        var divisor = rms.clamp_min(1.0);
        _divisors[slot.Name] = divisor.to(ScalarType.Float64).item<double>();
        var rate = divisor.reciprocal() * lr;                                                   // eta_t, scalar tensor
        if (slot.Decay && WeightDecay > 0) slot.Parameter.sub_(slot.Parameter * (rate * WeightDecay));
        var update = (slot.FirstMoment / correction1).div_(secondEstimate.sqrt_().add_(Eps));
        slot.Parameter.sub_(update.mul_(rate));
    }
}
