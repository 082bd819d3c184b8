using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// AdamW with decoupled weight decay, applied only to the parameters that should decay (not norms or biases).
/// Written here rather than taken from torch.optim so its state is plain named tensors (see
/// <see cref="AdamFamilyOptimizer"/>) and the learning rate is set per step by the schedule.
/// </summary>
public sealed class AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double eps, double weightDecay)
    : AdamFamilyOptimizer(parameters, beta1, beta2, eps, weightDecay)
{
    protected override void Update(Slot slot, Tensor grad, double lr, double correction1, double correction2)
    {
        if (slot.Decay && WeightDecay > 0) slot.Parameter.mul_(1 - lr * WeightDecay);
        var denominator = slot.SecondMoment.sqrt().div_(Math.Sqrt(correction2)).add_(Eps);
        slot.Parameter.addcdiv_(slot.FirstMoment, denominator, value: -lr / correction1);
    }
}
