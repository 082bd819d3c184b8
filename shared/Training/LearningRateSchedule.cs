namespace Training.Shared.Training;

/// <summary>Learning rate at an optimizer step (1-based): linear warmup, then the chosen decay.</summary>
public abstract record LearningRateSchedule(double PeakLr, long WarmupSteps, long TotalSteps, double MinLrRatio)
{
    public double At(long step)
    {
        if (WarmupSteps > 0 && step <= WarmupSteps) return PeakLr * step / WarmupSteps;
        return PeakLr * AfterWarmup(step);
    }

    /// <summary>Multiplier of the peak rate after warmup.</summary>
    protected abstract double AfterWarmup(long step);

    protected double MinRatio => MinLrRatio;
}

public sealed record ConstantSchedule(double PeakLr, long WarmupSteps, long TotalSteps)
    : LearningRateSchedule(PeakLr, WarmupSteps, TotalSteps, 1)
{
    protected override double AfterWarmup(long step) => 1;
}

/// <summary>Half-cosine from the peak down to <c>MinLrRatio * peak</c> at the last step.</summary>
public sealed record CosineSchedule(double PeakLr, long WarmupSteps, long TotalSteps, double MinLrRatio)
    : LearningRateSchedule(PeakLr, WarmupSteps, TotalSteps, MinLrRatio)
{
    protected override double AfterWarmup(long step)
    {
        var span = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Clamp((double)(step - WarmupSteps) / span, 0, 1);
        return MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

/// <summary>Warmup-stable-decay: the peak rate until the last <c>DecayFraction</c> of steps, then a 1-sqrt cooldown
/// (the shape the Ettin recipe uses) down to <c>MinLrRatio * peak</c>.</summary>
public sealed record WarmupStableDecaySchedule(double PeakLr, long WarmupSteps, long TotalSteps, double MinLrRatio, double DecayFraction)
    : LearningRateSchedule(PeakLr, WarmupSteps, TotalSteps, MinLrRatio)
{
    protected override double AfterWarmup(long step)
    {
        var decaySteps = Math.Max(1, (long)Math.Round(TotalSteps * DecayFraction));
        var decayStart = TotalSteps - decaySteps;
        if (step <= decayStart) return 1;
        var progress = Math.Clamp((double)(step - decayStart) / decaySteps, 0, 1);
        return MinRatio + (1 - MinRatio) * (1 - Math.Sqrt(progress));
    }
}
