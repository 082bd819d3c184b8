using TorchSharp;
using TorchSharp.Modules;
using Training.Shared.Storage;
using static TorchSharp.torch;

namespace Training.Shared.Training;

/// <summary>
/// What AdamW and StableAdamW share: first and second moments per trainable parameter, a step counter for bias
/// correction, and a state of plain named tensors (exp_avg, exp_avg_sq, __steps__) that checkpoints store and restore
/// exactly. Subclasses only say how one parameter is updated.
/// </summary>
public abstract class AdamFamilyOptimizer : IOptimizer
{
    protected sealed record Slot(string Name, Parameter Parameter, bool Decay, Tensor FirstMoment, Tensor SecondMoment);

    private readonly List<Slot> _slots = new();

    protected AdamFamilyOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        foreach (var (name, parameter) in parameters)
        {
            if (!parameter.requires_grad) continue;
            _slots.Add(new Slot(name, parameter, ShouldDecay(name, parameter),
                zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope()));
        }
    }

    protected double Beta1 { get; }
    protected double Beta2 { get; }
    protected double Eps { get; }
    protected double WeightDecay { get; }

    /// <summary>Matrices decay; vectors (biases, norm weights) do not. Embeddings are matrices and decay, as in
    /// the T5 and GPT recipes.</summary>
    public static bool ShouldDecay(string name, Parameter parameter) => parameter.dim() >= 2 && !name.EndsWith(".bias", StringComparison.Ordinal);

    /// <summary>Optimizer steps taken so far (the bias-correction counter).</summary>
    public long Steps { get; private set; }

    public IReadOnlyList<Parameter> Parameters => _slots.Select(s => s.Parameter).ToList();

    public void Step(double lr)
    {
        Steps++;
        var correction1 = 1 - Math.Pow(Beta1, Steps);
        var correction2 = 1 - Math.Pow(Beta2, Steps);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        BeginStep();
        foreach (var slot in _slots)
        {
            var grad = slot.Parameter.grad;
            if (grad is null) continue;
            slot.FirstMoment.mul_(Beta1).add_(grad, alpha: 1 - Beta1);
            slot.SecondMoment.mul_(Beta2).addcmul_(grad, grad, value: 1 - Beta2);
            Update(slot, grad, lr, correction1, correction2);
        }
        EndStep();
    }

    /// <summary>Applies one step to one parameter, its moments already updated with <paramref name="grad"/>.</summary>
    protected abstract void Update(Slot slot, Tensor grad, double lr, double correction1, double correction2);

    protected virtual void BeginStep()
    {
    }

    protected virtual void EndStep()
    {
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
        GC.SuppressFinalize(this);
    }
}
