using TorchSharp.Modules;
using Training.Shared.Spec;
using Training.Shared.Storage;

namespace Training.Shared.Training;

/// <summary>What the trainer needs of an optimizer: a step at the scheduled rate, and state it can checkpoint exactly.</summary>
public interface IOptimizer : IDisposable
{
    IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Optimizer steps taken so far (the bias-correction counter).</summary>
    long Steps { get; }

    void Step(double lr);

    void ZeroGrad();

    List<HostTensor> Snapshot();

    void Restore(IReadOnlyList<HostTensor> state, string source);
}

/// <summary>The optimizer an experiment's <c>optimizer:</c> section names.</summary>
public static class OptimizerFactory
{
    public static IOptimizer Create(OptimizerSpec spec, IEnumerable<(string Name, Parameter Parameter)> parameters) => spec.Kind switch
    {
        OptimizerKind.AdamW => new AdamW(parameters, spec.Beta1, spec.Beta2, spec.Eps, spec.WeightDecay),
        OptimizerKind.StableAdamW => new StableAdamW(parameters, spec.Beta1, spec.Beta2, spec.Eps, spec.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, "unknown optimizer.kind"),
    };
}
