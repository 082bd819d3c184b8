namespace Training.Shared.Models;

/// <summary>
/// How to generate. Temperature 0 is greedy; otherwise logits / Temperature are sampled, restricted to the
/// TopK most likely tokens when TopK > 0, from a generator seeded with Seed (same seed, same tokens).
/// UseCache = false recomputes the full forward pass every step (the baseline the KV cache is measured against).
/// </summary>
public sealed record GenerationOptions(int MaxNewTokens, double Temperature = 0, int TopK = 0, long Seed = 0, bool UseCache = true)
{
    public bool IsGreedy => Temperature == 0;

    public void Validate()
    {
        if (MaxNewTokens <= 0)
            throw new ArgumentException($"GenerationOptions.MaxNewTokens = {MaxNewTokens} must be positive.", nameof(MaxNewTokens));
        if (Temperature < 0 || !double.IsFinite(Temperature))
            throw new ArgumentException($"GenerationOptions.Temperature = {Temperature} must be 0 (greedy) or positive.", nameof(Temperature));
        if (TopK < 0)
            throw new ArgumentException($"GenerationOptions.TopK = {TopK} must be 0 (no limit) or positive.", nameof(TopK));
    }
}
