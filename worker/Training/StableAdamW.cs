using TorchSharp;
using TorchSharp.Modules;
using Training.Shared.Storage;
using static TorchSharp.torch;

namespace Training.Worker.Training;

/// <summary>
/// StableAdamW (Wortsman et al. 2023, "Stable and low-precision training for large-scale vision-language models";
/// the Ettin recipe's optimizer): AdamW whose learning rate is divided, per tensor and per step, by
/// max(1, RMS_t) with RMS_t = sqrt(mean(g_t^2 / max(v_t, eps^2))), v_t the bias-corrected second moment: AdaFactor's
/// update clipping, which caps the step when a gradient is large against its own history (the loss-spike case)
/// instead of clipping the global gradient norm. Decoupled weight decay scales with the clipped rate too, and is not
/// applied to norms and biases (<see cref="AdamW.ShouldDecay"/>). The state has AdamW's layout (exp_avg, exp_avg_sq, step).
/// </summary>
public sealed class StableAdamW : IOptimizer
{
    private sealed record Slot(string Name, Parameter Parameter, bool Decay, Tensor FirstMoment, Tensor SecondMoment);

    private readonly List<Slot> _slots = new();
    private readonly double _beta1, _beta2, _eps, _weightDecay;

    public StableAdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
        _weightDecay = weightDecay;
        foreach (var (name, parameter) in parameters)
        {
            if (!parameter.requires_grad) continue;
            _slots.Add(new Slot(name, parameter, AdamW.ShouldDecay(name, parameter),
                zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope()));
        }
    }

    public long Steps { get; private set; }

    public IReadOnlyList<Parameter> Parameters => _slots.Select(s => s.Parameter).ToList();

    /// <summary>Per parameter, the factor its rate was divided by in the last step (max(1, RMS_t)).</summary>
    public IReadOnlyDictionary<string, double> LastRateDivisors { get; private set; } = new Dictionary<string, double>();

    public void Step(double lr)
    {
        Steps++;
        var correction1 = 1 - Math.Pow(_beta1, Steps);
        var correction2 = 1 - Math.Pow(_beta2, Steps);
        var divisors = new Dictionary<string, double>(_slots.Count);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var slot in _slots)
        {
            var grad = slot.Parameter.grad;
            if (grad is null) continue;
            slot.FirstMoment.mul_(_beta1).add_(grad, alpha: 1 - _beta1);
            slot.SecondMoment.mul_(_beta2).addcmul_(grad, grad, value: 1 - _beta2);
            var secondEstimate = slot.SecondMoment / correction2;                                   // v_t
            var rms = (grad.square() / secondEstimate.clamp_min(_eps * _eps)).mean().sqrt_();       // scalar
            var divisor = rms.clamp_min(1.0);
            divisors[slot.Name] = divisor.to(ScalarType.Float64).item<double>();
            var rate = divisor.reciprocal() * lr;                                                   // eta_t, scalar tensor
            if (slot.Decay && _weightDecay > 0) slot.Parameter.sub_(slot.Parameter * (rate * _weightDecay));
            var update = (slot.FirstMoment / correction1).div_(secondEstimate.sqrt_().add_(_eps));
            slot.Parameter.sub_(update.mul_(rate));
        }
        LastRateDivisors = divisors;
    }

    public void ZeroGrad()
    {
        foreach (var slot in _slots) slot.Parameter.grad?.zero_();
    }

    public List<HostTensor> Snapshot()
    {
        var result = new List<HostTensor>(_slots.Count * 2 + 1);
        foreach (var slot in _slots)
        {
            result.Add(HostTensor.From($"{slot.Name}.exp_avg", slot.FirstMoment));
            result.Add(HostTensor.From($"{slot.Name}.exp_avg_sq", slot.SecondMoment));
        }
        using var steps = tensor(new[] { Steps });
        result.Add(HostTensor.From("__steps__", steps));
        return result;
    }

    public void Restore(IReadOnlyList<HostTensor> state, string source)
    {
        var byName = state.ToDictionary(t => t.Name);
        if (!byName.TryGetValue("__steps__", out var steps))
            throw new InvalidDataException($"{source}: optimizer state has no step counter");
        using var _ = no_grad();
        foreach (var slot in _slots)
        {
            foreach (var (suffix, target) in new[] { ("exp_avg", slot.FirstMoment), ("exp_avg_sq", slot.SecondMoment) })
            {
                if (!byName.TryGetValue($"{slot.Name}.{suffix}", out var saved))
                    throw new InvalidDataException($"{source}: optimizer state lacks {slot.Name}.{suffix}");
                using var loaded = saved.ToTensor(target.device);
                if (!loaded.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"{source}: {slot.Name}.{suffix} has shape [{string.Join(",", loaded.shape)}], model needs [{string.Join(",", target.shape)}]");
                target.copy_(loaded);
            }
        }
        using var stepTensor = steps.ToTensor(CPU);
        Steps = stepTensor.item<long>();
    }

    public void Dispose()
    {
        foreach (var slot in _slots)
        {
            slot.FirstMoment.Dispose();
            slot.SecondMoment.Dispose();
        }
    }
}
